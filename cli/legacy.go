package cli

import (
	"fmt"
	"os"
)

// errorf prints a berth error on the process's stderr, for the image verbs
// until they take a ctx.
func errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "berth: "+format+"\n", args...)
}
