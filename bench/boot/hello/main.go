// Command hello is the baseline init of make bench's boot benchmark: a
// static Go program that prints the time since boot and powers off.
package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func main() {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	fmt.Printf("[%12.6f] hello: init started\n", float64(ts.Sec)+float64(ts.Nsec)/1e9)
	// tcdrain: the line leaves the serial port before the kernel's
	// power-off messages, which otherwise cut into it ("hello: init
	// start[ 2.45] kvm: exiting hardware virtualization ... ed"), and a
	// raspi3b, which cannot power off, was waited for until the timeout.
	_ = unix.IoctlSetInt(1, unix.TCSBRK, 1)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
