package hugeheap

// isBoot reports whether a command line, its arguments each ended by a
// zero byte as /proc/PID/cmdline has them, runs the verb boot.
func isBoot(cmdline []byte) bool {
	i := 0
	for i < len(cmdline) && cmdline[i] != 0 {
		i++
	}
	verb := cmdline[min(i+1, len(cmdline)):]
	return len(verb) >= 5 && string(verb[:5]) == "boot\x00"
}
