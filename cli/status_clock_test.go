package cli

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"berth/boot"
	"berth/internal/testutil"
)

// sntpServer answers SNTP on a loopback port with this host's clock plus
// skew, stratum 3.
func sntpServer(t *testing.T, skew time.Duration) string {
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
			var resp [48]byte
			resp[0], resp[1] = 4<<3|4, 3 // version 4, server; stratum 3
			copy(resp[24:32], buf[40:48])
			binary.BigEndian.PutUint64(resp[32:40], ntp(time.Now().Add(skew)))
			binary.BigEndian.PutUint64(resp[40:48], ntp(time.Now().Add(skew)))
			pc.WriteTo(resp[:], addr)
		}
	}()
	return pc.LocalAddr().String()
}

// TestBootStatusClock: berth boot on this host asks the [network] ntp
// server and berth status shows what it measured — in the table and as
// JSON — while the host's clock, which berth boot leaves alone, is not
// changed and no saved time is written; a reload's new server is asked
// at once.
func TestBootStatusClock(t *testing.T) {
	dir := t.TempDir()
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", filepath.Join(dir, "bb.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	srv := sntpServer(t, time.Hour)
	config := func(server string) string {
		return fmt.Sprintf("[network]\nntp = [%q]\n\n[[container]]\nname = \"idle\"\nimage = \"bb.tar.zst\"\ncommand = [\"sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n", server)
	}
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, config(srv))
	state, sock := filepath.Join(dir, "state"), filepath.Join(dir, "berth.sock")
	t.Setenv("BERTH_SOCKET", sock)
	log := &bootLog{}
	cmd := exec.Command(berthBin, "boot", "--config", cfg, "--state", state, "--socket", sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var st boot.Status
	waitFor(t, "a sync in berth status", log, func() bool {
		_, stdout, _ := berth(t, "status", "--json")
		st = boot.Status{}
		return json.Unmarshal([]byte(stdout), &st) == nil && st.Clock != nil && st.Clock.LastSync != nil
	})
	c := st.Clock
	if c.Source != "host" || len(c.Servers) != 1 || c.Servers[0] != srv || c.RTC != "none" || c.SavedTime != "" || c.LastAdjust != "" || c.NextSync == nil {
		t.Errorf("status clock: %+v", c)
	}
	// The server is an hour ahead of this host: so is the offset.
	if off := *c.LastOffsetSec; off < 3599 || off > 3601 {
		t.Errorf("offset %v s, want 3600", off)
	}
	if d := time.Since(c.Time); d < -time.Minute || d > time.Minute {
		t.Errorf("the clock berth reports, %v, is not this host's: berth boot changed it?", c.Time)
	}
	status, stdout, _ := berth(t, "status")
	for _, re := range []string{
		`(?m)^clock +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(source: host\)$`,
		`(?m)^sntp +last \S+Z, offset \+(3599\.9|3600\.0)\d{5}s, next \S+Z; servers ` + regexp.QuoteMeta(srv) + `$`,
		`(?m)^rtc +none$`,
	} {
		if status != 0 || !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("status table lacks %s:\n%s", re, stdout)
		}
	}
	if !regexp.MustCompile(`says this host's clock is off by \+(59m59\.9|1h0m0)`).MatchString(log.String()) {
		t.Errorf("log lacks the measured offset:\n%s", log.String())
	}
	// A reload that names another server asks it at once.
	srv2 := sntpServer(t, 2*time.Hour)
	write(t, cfg, config(srv2))
	if status, _, stderr := berth(t, "reload"); status != 0 {
		t.Fatalf("reload: %s", stderr)
	}
	waitFor(t, "a sync with the reloaded server", log, func() bool {
		_, stdout, _ := berth(t, "status", "--json")
		st = boot.Status{}
		return json.Unmarshal([]byte(stdout), &st) == nil && st.Clock != nil && len(st.Clock.Servers) == 1 && st.Clock.Servers[0] == srv2 &&
			st.Clock.LastOffsetSec != nil && *st.Clock.LastOffsetSec > 7100
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if matches, _ := filepath.Glob(filepath.Join(state, "clock*")); len(matches) > 0 {
		t.Errorf("berth boot saved the time: %v", matches)
	}
}
