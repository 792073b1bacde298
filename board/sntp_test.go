package board

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeServer is an SNTP server on a loopback port: its clock runs skew
// ahead of ours; edit spoils each answer. With first set, a spoiled copy
// of each answer goes out before the good one.
type fakeServer struct {
	skew  time.Duration
	edit  func(b []byte)
	first bool
}

// fakeNTP serves SNTP, skew ahead of our clock, edit spoiling its answers.
func fakeNTP(t *testing.T, skew time.Duration, edit func(b []byte)) string {
	return serveNTP(t, fakeServer{skew: skew, edit: edit})
}

// serveNTP starts f and returns its address.
func serveNTP(t *testing.T, f fakeServer) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return serveNTPOn(pc, f)
}

// serveNTPOn serves f on pc until the test ends.
func serveNTPOn(pc net.PacketConn, f fakeServer) string {
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
			recv := time.Now().Add(f.skew)
			var resp [48]byte
			resp[0] = 0<<6 | 4<<3 | 4                         // server
			resp[1] = 2                                       // stratum
			binary.BigEndian.PutUint32(resp[4:8], 1<<16/100)  // root delay 10 ms
			binary.BigEndian.PutUint32(resp[8:12], 1<<16/200) // root dispersion 5 ms
			copy(resp[24:32], buf[40:48])
			binary.BigEndian.PutUint64(resp[32:40], ntpTime(recv))
			binary.BigEndian.PutUint64(resp[40:48], ntpTime(time.Now().Add(f.skew)))
			if f.edit != nil {
				spoiled := resp
				f.edit(spoiled[:])
				pc.WriteTo(spoiled[:], addr)
				if !f.first {
					continue
				}
			}
			pc.WriteTo(resp[:], addr)
		}
	}()
	return pc.LocalAddr().String()
}

// TestSNTPDefaultPort: a server named without a port is asked on 123,
// as the README says; one with a port, on that port.
func TestSNTPDefaultPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:123")
	if err != nil {
		t.Skipf("port 123 on the loopback is taken here: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	serveNTPOn(pc, fakeServer{})
	if s, err := QuerySNTP(context.Background(), "127.0.0.1", 2*time.Second); err != nil || s.Stratum != 2 {
		t.Errorf("127.0.0.1 (port 123 by default): %+v, %v", s, err)
	}
	if _, err := QuerySNTP(context.Background(), "127.0.0.1:124", 500*time.Millisecond); err == nil {
		t.Error("127.0.0.1:124, where no server answers: an answer")
	}
}

func TestSNTPOffset(t *testing.T) {
	for _, skew := range []time.Duration{0, 90 * time.Minute, -300 * 24 * time.Hour, 9 * 365 * 24 * time.Hour} {
		s, err := QuerySNTP(context.Background(), fakeNTP(t, skew, nil), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// The fake server's clock is ours plus skew, read microseconds
		// apart: the offset must be skew, give or take the loopback.
		if d := s.Offset - skew; d < -time.Second || d > time.Second || s.Delay < 0 || s.Stratum != 2 {
			t.Errorf("skew %v: sample %+v", skew, s)
		}
		if s.RootDelay.Round(time.Millisecond) != 10*time.Millisecond {
			t.Errorf("root delay %v, want 10ms", s.RootDelay)
		}
		if s.RootDispersion.Round(time.Millisecond) != 5*time.Millisecond {
			t.Errorf("root dispersion %v, want 5ms", s.RootDispersion)
		}
	}
}

// TestSNTPRefused: answers that do not prove themselves are not believed.
func TestSNTPRefused(t *testing.T) {
	tests := []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"wrong origin", func(b []byte) { b[24] ^= 1 }, "origin timestamp does not match"},
		{"client mode", func(b []byte) { b[0] = 4<<3 | 3 }, "mode 3"},
		{"kiss of death", func(b []byte) { b[1] = 0; copy(b[12:16], "RATE") }, `kiss-o'-death): code "RATE"`},
		{"unsynchronized", func(b []byte) { b[0] |= 3 << 6 }, "not synchronized"},
		{"zero transmit", func(b []byte) { copy(b[40:48], make([]byte, 8)) }, "zero timestamp"},
		{"version 2", func(b []byte) { b[0] = 2<<3 | 4 }, "version 2"},
		{"mode 0", func(b []byte) { b[0] = 4 << 3 }, "mode 0"},
		{"sent before received", func(b []byte) {
			binary.BigEndian.PutUint64(b[32:40], binary.BigEndian.Uint64(b[40:48])+1<<32)
		}, "transmitted before it was received"},
		// A server 2 s from its reference, or one that claims a negative
		// root delay (read unsigned, as RFC 5905 has it), is too far off.
		{"root dispersion 2s", func(b []byte) { binary.BigEndian.PutUint32(b[8:12], 2<<16) }, "root distance"},
		{"negative root delay", func(b []byte) { binary.BigEndian.PutUint32(b[4:8], 0xffff0000) }, "root distance"},
		// A server that says it held the request 2 s, longer than the
		// round trip: its delay would be 0, the least uncertain.
		{"held longer than the round trip", func(b []byte) {
			binary.BigEndian.PutUint64(b[40:48], binary.BigEndian.Uint64(b[32:40])+2<<32)
		}, "longer than the round trip"},
		// Times outside 2025-2099, at the edges and just past them.
		{"1970", func(b []byte) { stamp(b, time.Unix(5, 0)) }, "its time 1970-01-01T00:00:05Z is outside 2025-2099"},
		{"2024, the last second", func(b []byte) { stamp(b, plausibleFrom().Add(-time.Second)) }, "its time 2024-12-31T23:59:59Z is outside 2025-2099"},
		{"2100", func(b []byte) { stamp(b, plausibleTo()) }, "its time 2100-01-01T00:00:00Z is outside 2025-2099"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := QuerySNTP(context.Background(), fakeNTP(t, 0, tc.edit), 500*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestSNTPIgnoresBadDatagrams: a datagram that is no answer to the
// request (a stale or forged one) arriving first does not spoil the
// exchange: the client waits on for the real answer.
func TestSNTPIgnoresBadDatagrams(t *testing.T) {
	forged := func(b []byte) { b[24] ^= 1; binary.BigEndian.PutUint64(b[40:48], ntpTime(time.Now().Add(-time.Hour))) }
	s, err := QuerySNTP(context.Background(), serveNTP(t, fakeServer{skew: time.Minute, edit: forged, first: true}), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset < 59*time.Second || s.Offset > 61*time.Second {
		t.Errorf("offset %v, want the real answer's minute", s.Offset)
	}
}

// TestSNTPCancel: a cancelled context ends the wait for a server that
// does not answer, as berth's shutdown needs.
func TestSNTPCancel(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := QuerySNTP(ctx, silent.LocalAddr().String(), time.Hour)
		done <- err
	}()
	// The request arrives: the client is waiting now.
	buf := make([]byte, 64)
	if _, _, err := silent.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer") {
			t.Errorf("cancelled query: %v", err)
		}
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("a cancelled query kept waiting")
	}
}

// TestSNTPBest picks the server that answers, the least uncertain of
// two that agree, neither of two that do not, the median of three, and
// reports all when none does.
func TestSNTPBest(t *testing.T) {
	dead := "127.0.0.1:1"                                                  // nothing listens: ICMP port unreachable
	far := func(b []byte) { binary.BigEndian.PutUint32(b[8:12], 1<<16/2) } // 500 ms dispersion
	s, err := BestSample(context.Background(), []string{dead, serveNTP(t, fakeServer{skew: time.Hour + 300*time.Millisecond, edit: far}), fakeNTP(t, time.Hour, nil)}, time.Second)
	if err != nil || s.Offset < time.Hour-50*time.Millisecond || s.Offset > time.Hour+50*time.Millisecond {
		t.Fatalf("best of a dead, an uncertain and a good server: %+v %v", s, err)
	}
	// Two that disagree: a liar that claims no uncertainty at all does
	// not win over an honest server; neither is believed.
	certain := func(b []byte) { copy(b[4:12], make([]byte, 8)) } // root delay and dispersion 0
	liar := serveNTP(t, fakeServer{skew: 5 * time.Hour, edit: certain})
	s, err = BestSample(context.Background(), []string{liar, fakeNTP(t, time.Hour, nil)}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "disagree") || !strings.Contains(err.Error(), liar) {
		t.Fatalf("a liar and an honest server: %+v %v", s, err)
	}
	// Three answers: the median offset wins over a liar that claims no
	// uncertainty at all.
	s, err = BestSample(context.Background(), []string{
		serveNTP(t, fakeServer{skew: 5 * time.Hour, edit: certain}),
		fakeNTP(t, time.Hour, nil),
		fakeNTP(t, time.Hour+time.Second, nil),
	}, time.Second)
	if err != nil || s.Offset < 59*time.Minute || s.Offset > 61*time.Minute {
		t.Fatalf("best of a liar and two agreeing servers: %+v %v", s, err)
	}
	if _, err := BestSample(context.Background(), []string{dead}, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "sntp 127.0.0.1:1") {
		t.Fatalf("a dead server: %v", err)
	}
	if _, err := BestSample(context.Background(), nil, time.Second); err == nil {
		t.Fatal("no server gave a sample")
	}
}

func TestNTPTimeRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(0, 0), time.Date(2026, 11, 30, 1, 2, 3, 456789000, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got := fromNTP(ntpTime(tm)); got.Sub(tm).Abs() > time.Microsecond {
			t.Errorf("%v round-trips to %v", tm, got)
		}
	}
}

// stamp sets an answer's receive and transmit timestamps to t.
func stamp(b []byte, t time.Time) {
	binary.BigEndian.PutUint64(b[32:40], ntpTime(t))
	binary.BigEndian.PutUint64(b[40:48], ntpTime(t))
}

// TestSNTPPlausibleEdges: the first second a server's time may say, and
// one just within maxAheadYears of this clock, are believed; a minute
// past that is not.
func TestSNTPPlausibleEdges(t *testing.T) {
	ahead := time.Now().AddDate(maxAheadYears, 0, 0)
	if _, err := QuerySNTP(context.Background(), fakeNTP(t, 0, func(b []byte) { stamp(b, ahead.Add(time.Minute)) }), 500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "more than 10 years ahead") {
		t.Errorf("a minute past %d years ahead: %v", maxAheadYears, err)
	}
	for _, at := range []time.Time{plausibleFrom(), ahead.Add(-time.Minute)} {
		s, err := QuerySNTP(context.Background(), fakeNTP(t, 0, func(b []byte) { stamp(b, at) }), 500*time.Millisecond)
		if err != nil {
			t.Errorf("%s: %v", at, err)
			continue
		}
		if got := time.Now().Add(s.Offset); got.Sub(at).Abs() > 2*time.Second {
			t.Errorf("%s: offset %v gives %s", at, s.Offset, got)
		}
	}
}

// TestSNTPAgree: two offsets agree up to their root distances and
// agreeSlack apart, not a nanosecond more, whichever is ahead.
func TestSNTPAgree(t *testing.T) {
	a := Sample{Server: "a", Offset: time.Hour, Delay: 20 * time.Millisecond, RootDispersion: 5 * time.Millisecond} // distance 15 ms
	b := Sample{Server: "b", Offset: time.Hour, RootDelay: 40 * time.Millisecond}                                   // distance 20 ms
	edge := a.RootDistance() + b.RootDistance() + agreeSlack
	for _, tc := range []struct {
		apart time.Duration
		ok    bool
	}{{0, true}, {edge, true}, {-edge, true}, {edge + 1, false}, {-edge - 1, false}, {9 * 365 * 24 * time.Hour, false}} {
		b.Offset = a.Offset + tc.apart
		if err := agree(a, b); (err == nil) != tc.ok {
			t.Errorf("offsets %v apart (edge %v): agree = %v, want ok %v", tc.apart, edge, err, tc.ok)
		}
	}
}
