/* auditcmd — `meshctl audit verify MESH_ID` (docs/protocol.md §8). */
#ifndef CLI_AUDITCMD_H
#define CLI_AUDITCMD_H

int auditcmd_verify(int argc, char **argv);

#endif
