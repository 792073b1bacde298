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

// isModprobe reports whether a command line (see isBoot) is berth run as
// the kernel's modprobe: its first argument's last element is
// "modprobe". The kernel may run 50 of those at once (its limit of
// concurrent module requests), each a few milliseconds: a huge page each
// would be 2 MiB more of memory each, on a board that may have 64 MiB.
func isModprobe(cmdline []byte) bool {
	end := 0
	for end < len(cmdline) && cmdline[end] != 0 {
		end++
	}
	start := end
	for start > 0 && cmdline[start-1] != '/' {
		start--
	}
	return string(cmdline[start:end]) == "modprobe"
}
