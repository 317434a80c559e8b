/* peersend — `meshctl send`, `meshctl status`, `meshctl peers`. */
#ifndef CLI_PEERSEND_H
#define CLI_PEERSEND_H

int peersend_send(int argc, char **argv);
int peersend_status(int argc, char **argv);
int peersend_peers(int argc, char **argv); /* list_peers as a table or JSON */

#endif
