/*
 * failpoint.h - named points where a process can be made to crash, for fault
 * tests. Compiled into every build and inert unless armed: the environment
 * variable TPC_FAILPOINTS lists the armed names, comma-separated, e.g.
 *   TPC_FAILPOINTS=leader-after-decide
 * An armed point logs its name and kills the process with SIGKILL, exactly
 * as an operator's kill -9 would: no cleanup, no flush.
 *
 * Points:
 *   participant-after-prepare   the prepared record is durable, the vote not yet sent
 *   participant-before-commit   a commit arrived, before it is applied
 *   participant-after-commit    the commit is applied and durable, before the acknowledgement
 *   acceptor-after-persist      an acceptor's records are durable, before it answers
 *   leader-after-some-prepares  the leader sent its first prepare only
 *   leader-after-decide         the decision is durable here, before anyone is told
 */
#ifndef TPC_FAILPOINT_H
#define TPC_FAILPOINT_H

#include <stdbool.h>

void failpoint(const char *name);
/* True when name is armed (for points that must change what happens before the crash). */
bool failpoint_armed(const char *name);

#endif
