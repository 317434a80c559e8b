/* peertable — how `meshctl peers` prints a peers_list reply: an aligned
 * table for people, or the peers array as one JSON line with --json. */
#ifndef CLI_PEERTABLE_H
#define CLI_PEERTABLE_H

#include <cjson/cJSON.h>
#include <stdio.h>

void peertable_print(FILE *f, const cJSON *peers, int json);

#endif
