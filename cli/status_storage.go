package cli

import (
	"fmt"
	"io"
	"strings"

	"berth/boot"
	"berth/container"
)

// printStorage writes berth status's storage line: the data partition,
// whether it is mounted, its free space, and where berth's state is.
func printStorage(w io.Writer, s *boot.StorageInfo) {
	if s == nil {
		return
	}
	line := s.Device + ": "
	switch s.State {
	case "mounted":
		line += s.Path
		if s.FS != nil && s.FS.Label != "" {
			line += fmt.Sprintf(" (%s %q)", s.FS.Type, s.FS.Label)
		}
		line += fmt.Sprintf(" mounted at %s (%s), %s free of %s", s.Mount, s.FSType,
			container.FormatSize(s.FreeBytes), container.FormatSize(s.SizeBytes))
	case "host":
		line += "not mounted (berth boot leaves this host's disks alone)"
	default: // "missing: waited 10s for LABEL=data", "failed: mount ..."
		if !strings.HasPrefix(s.Error, s.State) {
			line += s.State + ": "
		}
		line += s.Error + "; containers with volumes do not start"
	}
	line += "; state in " + s.StateDir
	if s.Volumes != "" {
		line += ", volumes in " + s.Volumes
	}
	fmt.Fprintf(w, "storage\t%s\n", line)
}
