/* peerconnect — `meshctl connect` (see peerconnect.c). */
#ifndef CLI_PEERCONNECT_H
#define CLI_PEERCONNECT_H

int peerconnect_main(int argc, char **argv);

#endif
