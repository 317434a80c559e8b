/* install — meshctl install / uninstall: register `meshctl mcp` and the
 * hooks where Claude Code reads them (cli/installjson.h says which files),
 * idempotently, every other entry kept.  What is ours: the mcpServers entry
 * of the name given (default "meshbroker") whose args start with "mcp", and
 * the hook commands ending in INSTALL_MARK; uninstall removes exactly those.
 * The hooks: UserPromptSubmit runs `hook working` (async) and `hook prompt`
 * (messages as additionalContext, for a Claude Code without channels), Stop
 * runs `hook idle` (async); each calls this meshctl by its absolute path
 * with --config, so neither PATH nor a default port matters. */
#ifndef CLI_INSTALL_H
#define CLI_INSTALL_H

#define INSTALL_MARK "# meshctl install"
#define INSTALL_NAME "meshbroker"

int install_main(int argc, char **argv);
int install_uninstall(int argc, char **argv);

/* The number of our hook commands and whether our MCP entry is in the files
 * of scope (for doctor): 0 ok, -1 unreadable. */
struct installjson_paths;
int install_count(const struct installjson_paths *p, const char *name, int *hooks, int *mcp);

#endif
