/*
 * failpoint.h - named points where a process can be made to crash, for fault
 * tests. Compiled into every build and inert unless armed: the environment
 * variable TPC_FAILPOINTS lists the armed names, comma-separated, e.g.
 *   TPC_FAILPOINTS=leader-after-decide
 * An armed point logs its name and kills the process with SIGKILL, exactly
 * as an operator's kill -9 would: no cleanup, no flush.
 *
 * Points: participant-before-commit (a commit arrives, before it is applied),
 * leader-after-decide (the decision is durable here, before anyone is told).
 */
#ifndef TPC_FAILPOINT_H
#define TPC_FAILPOINT_H

void failpoint(const char *name);

#endif
