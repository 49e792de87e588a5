"""What /proc says of processes: the fields of /proc/PID/stat after the command name.

    stat(pid)    its fields (fields[0] the state letter, [1] the parent, [2] the process
                 group, [11]/[12] user/system CPU ticks), or None when it is gone
    processes()  (pid, fields) of every process readable now
"""
import os


def stat(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # ended, or ended while being read


def processes():
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat(name)
            if fields is not None:
                yield int(name), fields
