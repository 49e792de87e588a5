/*
 * breakable.h - simulator-only switches that break one protocol rule each.
 *
 * They exist to prove that the simulator's checker has teeth: with a rule
 * broken, the checker must report a violation. They are compiled in only when
 * TPC_BREAKABLE is defined (the tpc_core_breakable library, linked by the
 * simulator alone); in every product build TPC_BROKEN() is the constant 0.
 */
#ifndef TPC_BREAKABLE_H
#define TPC_BREAKABLE_H

enum tpc_break {
    TPC_BREAK_NONE = 0,
    TPC_BREAK_ACCEPT_LOWER_BALLOT,  /* acceptor accepts a phase 2a below its promise */
    TPC_BREAK_DECIDE_ON_VOTES,      /* leader decides COMMITTED on votes that are not chosen */
    TPC_BREAK_RECOVER_PREPARED,     /* recovery proposes prepared when nothing was accepted */
    TPC_BREAK_FORGET_ABORTED_VOTE,  /* participant keeps an aborted vote for an unknown branch
                                     * in memory only (the simulated participant reads it) */
    TPC_BREAK_TELL_BEFORE_RECORD,   /* replica tells participants before its decision record */
    TPC_BREAK_ANSWER_BEFORE_CHOSEN, /* replica answers "committed" once votes are in */
    TPC_BREAK_TOLD_BEFORE_ACK,      /* replica marks an outcome told before every ack */
    TPC_BREAK_VOTE_BEFORE_DURABLE,  /* participant votes before its prepared record is durable */
    TPC_BREAK_FORGET_BEFORE_TOLD,   /* a replica's storage forgets a decision once recorded,
                                     * before every participant has it (and before it expires);
                                     * the simulated disk does it */
};

#ifdef TPC_BREAKABLE
extern enum tpc_break tpc_broken_rule;
#define TPC_BROKEN(rule) (tpc_broken_rule == (rule))
#else
#define TPC_BROKEN(rule) 0
#endif

#endif
