/* agents/version.h - library version. */
#ifndef AGENTS_VERSION_H
#define AGENTS_VERSION_H

#define AG_VERSION_MAJOR 0
#define AG_VERSION_MINOR 1
#define AG_VERSION_PATCH 0
#define AG_VERSION_STRING "0.1.0"
/* One integer that grows with every release: 0x00MMmmpp. */
#define AG_VERSION_NUMBER ((AG_VERSION_MAJOR << 16) | (AG_VERSION_MINOR << 8) | AG_VERSION_PATCH)

/* AG_API marks the library's public functions: the shared library is built
 * with hidden visibility, so exactly what the headers declare is exported. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define AG_API __attribute__((visibility("default")))
#else
#define AG_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually linked, as "MAJOR.MINOR.PATCH". Static storage. */
AG_API const char *ag_version(void);
/* AG_VERSION_NUMBER of the library actually linked. */
AG_API unsigned ag_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
