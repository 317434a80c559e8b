/* mcp_topics — topics from Claude (docs/protocol.md §11): the tools
 * topic_list, topic_join, topic_read and topic_post, posts to #topic from
 * send_message, and the topics and keys each session knows, with which
 * topic pushes are opened.  Keys — every key epoch's copy the member holds
 * (topic_key) — are opened and used by cli/topicbody.c, as `meshctl topic`
 * does: a push or message is opened with the key of its keyEpoch (a push
 * of a newer epoch than any held asks for the key again first), a post is
 * always v2 under the current epoch's key (refused while only a stale one
 * is held; v1 only for a legacy topic without a key). */
#ifndef CLI_MCP_TOPICS_H
#define CLI_MCP_TOPICS_H

#include "cli/mcp_state.h"

/* topic_list, topic_join, topic_read, topic_post; 0 when name is none of them */
int mcp_topics_tool(struct mcp *m, const cJSON *id, const char *name, const cJSON *args);
/* post c->text (c->priority) to topic (id or name) on link: the key, then the send */
void mcp_topics_post(struct mcp *m, struct mcp_call *c, int link, const char *topic);
/* a frame for the topic calls or the key cache (topic_*_response, an
 * error naming one of them); 1 when it was one */
int mcp_topics_frame(struct mcp_link *l, const cJSON *j, const char *type);
/* the text of a topic push, malloc'd; NULL with *wait set when its key is
 * being fetched (the push is held and tried again), NULL alone when it
 * cannot be read.  Fills g's topic name, unencrypted and mention. */
char *mcp_topics_push_text(struct mcp_link *l, const cJSON *push, struct mcp_msg *g, int *wait);
/* a topic push's topic id: ext "topicId" (§12.2: "topic" is the name),
 * else "topic" (an older broker sent the id there); NULL on other pushes */
const char *mcp_push_topic_id(const cJSON *push);
/* whether topic id is still waiting for its key on l */
int mcp_topics_waiting(const struct mcp_link *l, const char *topic_id);
/* every MCP_RESEAL_MS: for each topic whose key this run holds, the
 * members waiting for a copy get one sealed (as `meshctl topic tail` does) */
void mcp_topics_tick(struct mcp *m, int64_t now);
void mcp_topics_wipe(struct mcp_link *l); /* the keys, at the end */

#endif
