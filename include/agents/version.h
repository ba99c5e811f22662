/* agents/version.h - library version. */
#ifndef AGENTS_VERSION_H
#define AGENTS_VERSION_H

#define AG_VERSION_MAJOR 0
#define AG_VERSION_MINOR 1
#define AG_VERSION_PATCH 0
#define AG_VERSION_STRING "0.1.0"
/* One integer that grows with every release: 0x00MMmmpp. */
#define AG_VERSION_NUMBER ((AG_VERSION_MAJOR << 16) | (AG_VERSION_MINOR << 8) | AG_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually linked, as "MAJOR.MINOR.PATCH". Static storage. */
const char *ag_version(void);
/* AG_VERSION_NUMBER of the library actually linked. */
unsigned ag_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
