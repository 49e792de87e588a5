/* breakable.c - the switch of breakable.h; linked only into the simulator's core. */
#include "breakable.h"

enum tpc_break tpc_broken_rule = TPC_BREAK_NONE;
