package boot_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"berth/internal/vm"
)

// clockConfig boots with the RTC in 2005, a saved time in 2020 and an
// SNTP server on the test host's loopback (10.0.2.2 from the guest, port
// %[1]d). The container "clock" brings the uplink up itself, late —
// berth's sync must not have waited for it — waits for the sync, shows
// the saved time, has a reload name the server twice (a new server list:
// an immediate sync, which slews), then prints the clock and the RTC as a
// container reads them.
const clockConfig = `
[board]
modules = ["virtio_pci", "virtio_net"]

[network]
ntp = ["10.0.2.2:%[1]d"]

[[container]]
name = "clock"
image = "/images/demo.tar.zst"
net = "host"
cap_add = ["NET_ADMIN"]
command = ["/bin/sh", "-c", """
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 && echo uplink up
until berth status --json | grep -q '"last_sync"'; do sleep 0.5; done
echo saved $(cat /tmp/state/clock)
sed -i 's|^ntp = .*|ntp = ["10.0.2.2:%[1]d", "10.0.2.2:%[1]d"]|' /host/etc/berth.toml && berth reload
until berth status | grep -q '(slew)'; do sleep 0.5; done
berth status | grep -E '^(clock|sntp|rtc) '
/bin/clockprobe
echo rtc since_epoch $(cat /sys/class/rtc/rtc0/since_epoch)
"""]
` + vm.BerthCLIMounts + `
[[container.mount]]
source = "/etc"
target = "/host/etc"
[[container.mount]]
source = "/var/lib/berth"
target = "/tmp/state"
readonly = true
`

// TestQEMUClock boots each architecture with its RTC set to 2005
// (-rtc base=...), a saved time from 2020 and an SNTP server on this
// host: berth moves the clock forward to the saved time, boots without
// waiting for the network, steps the clock to the server's time once the
// uplink is up, writes the RTC and saves the time; a later sync slews.
// The guest's clock, as a container reads it, is then within 1 s of this
// host's: each probe line is compared with the host's clock when it
// arrives on the console, and the line that arrived fastest decides.
func TestQEMUClock(t *testing.T) {
	srv := sntpServer(t)
	start := time.Now()
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			console := &arrivals{}
			out, err := bootAppliance(t, appliance{
				arch: arch, config: fmt.Sprintf(clockConfig, srv.port),
				programs: map[string]string{"bin/clockprobe": "./boot/testdata/clockprobe"},
				modules:  []string{"overlay", "virtio_pci", "virtio_net"},
				initrd:   map[string]string{"var/lib/berth/clock": "2020-06-01T00:00:00Z\n"},
				serial:   console,
				// QEMU 7.2 refuses the harness's default DNS (10.0.2.2, "DNS
				// must be different from host"); this guest looks no name up.
				vm: vm.Config{Net: &vm.UserNet{DNS: "10.0.2.3"}, ExtraQEMU: []string{"-rtc", "base=2005-01-01T00:00:00"}},
			})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			server := fmt.Sprintf("10.0.2.2:%d", srv.port)
			wantLines(t, out,
				"berth: clock was 2005-01-01T00:0", "restored to the last saved time 2020-06-01T00:00:00Z",
				"clock | uplink up",
				"generation 2 committed",
				"clock | clock ", "(source: sntp "+server+" stratum 2)", "s (slew), next ",
				"clock | rtc ", "/dev/rtc0 20",
				"berth: power off")
			// The boot went on without the network: the uplink and the sync
			// came later. The step may come before the container's line
			// saying the uplink is up: the route is added before the echo.
			inOrder(t, out, "berth: boot done", "clock | uplink up")
			inOrder(t, out, "berth: boot done", "berth: clock stepped by +", "2020-06-01T00:00:", " -> ", "(sntp "+server+" stratum 2")
			clock, rtc, saved := console.offsets()
			if len(clock) == 0 || len(rtc) != 1 || len(saved) != 1 {
				t.Fatalf("no probe lines: clock %v, rtc %v, saved %v\n%s", clock, rtc, saved, out)
			}
			// The time was saved after the step: since this test started,
			// and before the line showing it arrived.
			if saved[0].before.Before(start.Add(-time.Second)) || saved[0].after < -time.Second {
				t.Errorf("saved time %v: not between the test's start %v and its line's arrival (%v later)", saved[0].before, start, saved[0].after)
			}
			best := clock[0]
			for _, d := range clock {
				best = min(best, d)
			}
			t.Logf("%s: host clock minus guest clock as each line arrived: %v; RTC: %v", arch, clock, rtc[0])
			if best.Abs() >= time.Second {
				t.Errorf("the guest's clock is %v behind this host's (negative: ahead), not within 1s", best)
			}
			// The RTC holds whole seconds — written rounded, read truncated,
			// its next second starting up to 1 s after the write — so it
			// was written with the synced time, not 2005's, when it is
			// within 2 s.
			if rtc[0].Abs() >= 2*time.Second {
				t.Errorf("the RTC is %v behind this host's clock (negative: ahead)", rtc[0])
			}
		})
	}
}

// sntpServer answers SNTP on the test host's loopback with the host's
// clock, stratum 2.
type ntpServer struct{ port int }

func sntpServer(t *testing.T) ntpServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ntp := func(tm time.Time) uint64 {
		return uint64(tm.Unix()+2208988800)<<32 | (uint64(tm.Nanosecond())<<32)/1e9
	}
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			recv := time.Now()
			var resp [48]byte
			resp[0], resp[1] = 4<<3|4, 2 // version 4, server; stratum 2
			copy(resp[24:32], buf[40:48])
			binary.BigEndian.PutUint64(resp[32:40], ntp(recv))
			binary.BigEndian.PutUint64(resp[40:48], ntp(time.Now()))
			pc.WriteTo(resp[:], addr)
		}
	}()
	return ntpServer{port: pc.LocalAddr().(*net.UDPAddr).Port}
}

// arrivals stamps each console line with the host's clock when its end
// arrived.
type arrivals struct {
	mu      sync.Mutex
	partial []byte
	lines   []arrival
}

type arrival struct {
	at   time.Time
	line string
}

func (a *arrivals) Write(p []byte) (int, error) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.partial = append(a.partial, p...)
	for {
		i := bytes.IndexByte(a.partial, '\n')
		if i < 0 {
			break
		}
		a.lines = append(a.lines, arrival{now, string(bytes.TrimRight(a.partial[:i], "\r"))})
		a.partial = a.partial[i+1:]
	}
	return len(p), nil
}

var (
	probeLine = regexp.MustCompile(`clock \| clockprobe (\d+)$`)
	rtcLine   = regexp.MustCompile(`clock \| rtc since_epoch (\d+)$`)
	savedLine = regexp.MustCompile(`clock \| saved (\S+)$`)
)

// savedTime is the saved time a line showed, and how long before the
// line's arrival it was.
type savedTime struct {
	before time.Time
	after  time.Duration
}

// offsets returns, for each probe line and for the RTC line, how far the
// host's clock at its arrival was ahead of the guest time it holds, and
// the saved times shown.
func (a *arrivals) offsets() (clock, rtc []time.Duration, saved []savedTime) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.lines {
		if m := probeLine.FindStringSubmatch(l.line); m != nil {
			ns, _ := strconv.ParseInt(m[1], 10, 64)
			clock = append(clock, l.at.Sub(time.Unix(0, ns)))
		}
		if m := rtcLine.FindStringSubmatch(l.line); m != nil {
			s, _ := strconv.ParseInt(m[1], 10, 64)
			rtc = append(rtc, l.at.Sub(time.Unix(s, 0)))
		}
		if m := savedLine.FindStringSubmatch(l.line); m != nil {
			if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				saved = append(saved, savedTime{t, l.at.Sub(t)})
			}
		}
	}
	return clock, rtc, saved
}
