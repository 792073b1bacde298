// Command kallsyms is an init for make bench's boot profile (bench/boot
// -profile): it prints the kernel's code symbols, "KS ADDRESS NAME" a
// line, and powers off. Booted with nokaslr, as the profiled boots are,
// the addresses are those the profile's samples fall on.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	os.Mkdir("/proc", 0o555)
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		fmt.Println("kallsyms: mount /proc:", err)
	} else if err := dump(); err != nil {
		fmt.Println("kallsyms:", err)
	}
	fmt.Println("kallsyms: done")
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func dump() error {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(os.Stdout, 1<<16)
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ADDRESS TYPE NAME [MODULE]: the code's, t or T.
		p := strings.Fields(s.Text())
		if len(p) >= 3 && (p[1] == "t" || p[1] == "T") {
			fmt.Fprintf(w, "KS %s %s\n", p[0], p[2])
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return s.Err()
}
