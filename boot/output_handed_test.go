package boot

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handedConfig is TestOutputHandedOn's pair: NAME-a hands its stdout to
// NAME-b over a socket on the mount both share, and exits; NAME-b
// writes into it for as long as it can.
const handedConfig = `[[container]]
name = "%[1]s-a"
image = "IMAGE"
command = ["/bin/fdpass", "send", "/shared/sock"]
log_size = "64M"
[[container.mount]]
source = "SHARED"
target = "/shared"

[[container]]
name = "%[1]s-b"
image = "IMAGE"
command = ["/bin/fdpass", "relay", "/shared/sock"]
stop_timeout = "1s"
[[container.mount]]
source = "SHARED"
target = "/shared"
`

// TestOutputHandedOn: a container's output pipe, handed to a process of
// another container (SCM_RIGHTS) that writes on after the container has
// exited, is drained for a while and then closed: the writer gets EPIPE
// and the ended container's log stops growing, with what the container
// itself wrote kept.
func TestOutputHandedOn(t *testing.T) {
	name := fmt.Sprintf("fixle-out%d", os.Getpid())
	h := startHostBoot(t, fmt.Sprintf(handedConfig, name), nil, map[string]string{"bin/fdpass": "./testdata/fdpass"})
	a, b := name+"-a", name+"-b"
	h.waitFor(a+" exited", time.Minute, func() bool { return h.ps()[a].State == "exited" })
	ended := regexp.MustCompile(`^relay ended after (\d+) lines: .*broken pipe`)
	var relayed int
	h.waitFor(b+"'s writes into "+a+"'s output to fail", time.Minute, func() bool {
		for _, l := range h.logs(b) {
			if m := ended.FindStringSubmatch(l); m != nil {
				relayed, _ = strconv.Atoi(m[1])
				return true
			}
		}
		return false
	})
	if p := h.ps()[b]; p.State != "running" {
		t.Errorf("%s: %+v, want it running on", b, p)
	}
	lines := h.logs(a)
	if !slices.Contains(lines, "sender: handed over, exiting") {
		t.Errorf("%s's own last line was lost: %d lines, from %.80q", a, len(lines), lines)
	}
	got := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "relayed ") {
			got++
		}
	}
	if got > relayed {
		t.Errorf("%s's log has %d lines of %s, which wrote %d", a, got, b, relayed)
	}
	if again := h.logs(a); len(again) != len(lines) {
		t.Errorf("%s's log grew from %d to %d lines once its pipe was closed", a, len(lines), len(again))
	}
}
