// Command clockprobe prints the system clock as a container reads it, to
// the nanosecond, five times 200 ms apart, for the QEMU clock test to
// compare with the host's clock as each line arrives on the console.
package main

import (
	"fmt"
	"time"
)

func main() {
	for i := 0; i < 5; i++ {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		fmt.Printf("clockprobe %d\n", time.Now().UnixNano())
	}
}
