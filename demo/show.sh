# Printed by each demo container: what it sees of itself.
echo "I am the $ROLE; hostname: $(hostname)"
echo "memory limit from my cgroup: $(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes) bytes"
echo "pids limit from my cgroup: $(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)"
echo "processes I can see (I am PID $$):"
ps -o pid,user,args
