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
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
