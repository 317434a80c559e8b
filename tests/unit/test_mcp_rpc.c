/* test_mcp_rpc — the JSON-RPC line reader of meshctl mcp (cli/mcp_rpc.c):
 * each kind of line is classified as the MCP stdio transport needs, and the
 * answers are JSON-RPC 2.0 with the request's id (null for a parse error). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mcp_rpc.h"

static enum mcp_rpc_kind kind_of(const char *line)
{
	struct mcp_rpc r;
	mcp_rpc_parse(line, strlen(line), &r);
	enum mcp_rpc_kind k = r.kind;
	mcp_rpc_free(&r);
	return k;
}

START_TEST(requests_notifications_and_responses_are_told_apart)
{
	struct mcp_rpc r;
	const char *l = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}";
	mcp_rpc_parse(l, strlen(l), &r);
	ck_assert_int_eq(r.kind, MCP_RPC_REQUEST);
	ck_assert_str_eq(r.method, "tools/call");
	ck_assert_int_eq((int)r.id->valuedouble, 7);
	ck_assert_ptr_nonnull(r.params);
	mcp_rpc_free(&r);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"),
			 MCP_RPC_NOTIFICATION);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}"), MCP_RPC_RESPONSE);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}  \r"), MCP_RPC_REQUEST);
}
END_TEST

START_TEST(malformed_lines_are_parse_errors_and_wrong_shapes_invalid_requests)
{
	ck_assert_int_eq(kind_of("{not json"), MCP_RPC_PARSE_ERROR);
	ck_assert_int_eq(kind_of(""), MCP_RPC_PARSE_ERROR);
	ck_assert_int_eq(kind_of("{} {}"), MCP_RPC_PARSE_ERROR);
	ck_assert_int_eq(kind_of("\xff\xfe{}"), MCP_RPC_PARSE_ERROR);
	ck_assert_int_eq(kind_of("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]"), MCP_RPC_INVALID);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}"), MCP_RPC_INVALID);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}"), MCP_RPC_INVALID);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}"), MCP_RPC_INVALID);
	ck_assert_int_eq(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}"), MCP_RPC_INVALID);
}
END_TEST

START_TEST(answers_carry_the_id_or_null)
{
	cJSON *id = cJSON_CreateString("req-1");
	cJSON *e = mcp_rpc_error(NULL, MCP_PARSE_ERROR, "Parse error");
	char *s = cJSON_PrintUnformatted(e);
	ck_assert_str_eq(s, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
	free(s);
	cJSON_Delete(e);
	cJSON *r = mcp_rpc_result(id, cJSON_CreateObject());
	s = cJSON_PrintUnformatted(r);
	ck_assert_str_eq(s, "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{}}");
	free(s);
	cJSON_Delete(r);
	cJSON_Delete(id);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mcp_rpc");
	TCase *tc = tcase_create("mcp_rpc");
	tcase_add_test(tc, requests_notifications_and_responses_are_told_apart);
	tcase_add_test(tc, malformed_lines_are_parse_errors_and_wrong_shapes_invalid_requests);
	tcase_add_test(tc, answers_carry_the_id_or_null);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
