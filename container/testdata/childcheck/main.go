// Command childcheck links container.Start, and with it the child of a
// direct start, for TestChildCallsOnlyRawSyscalls to disassemble.
package main

import (
	"os"

	"berth/container"
)

func main() {
	if len(os.Args) > 1 {
		_, _ = container.Start(nil, container.Spec{}, container.Options{})
	}
}
