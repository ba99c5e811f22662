/* agents.h - everything: include this one header.
 *
 *   #include <agents.h>
 *
 * See agents/client.h for the contract every request follows.
 */
#ifndef AGENTS_H
#define AGENTS_H
#include "agents/version.h"
#include "agents/error.h"
#include "agents/alloc.h"
#include "agents/host.h"
#include "agents/request.h"
#include "agents/client.h"
#include "agents/pool.h"
#include "agents/text.h"
#include "agents/agent.h"
#include "agents/batch.h"
#include "agents/gateway.h"
#include "agents/engine.h"
#include "agents/backend.h"
#endif
