/* core/version.c - version queries. */
#include "agents/version.h"

const char *ag_version(void) {
    return AG_VERSION_STRING;
}
unsigned ag_version_number(void) {
    return AG_VERSION_NUMBER;
}
