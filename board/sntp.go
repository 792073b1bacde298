package board

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// An SNTP client (RFC 4330): one request, one answer, checked before it
// is believed. berth steps the clock with the first answer at boot and
// slews it afterwards (clock.go).

// ntpEpochOffset is the seconds from 1900-01-01 (NTP's era 0) to 1970.
const ntpEpochOffset = 2208988800

// MaxRootDistance is the largest root distance of a believed answer:
// RFC 5905's MAXDIST. A server further than this from its reference
// clock (or with a network this slow) cannot tell the time to a second.
const MaxRootDistance = 1500 * time.Millisecond

// Sample is one SNTP exchange.
type Sample struct {
	// Server is the server as configured: "10.0.2.2", "ntp.lan:123".
	Server string
	// Offset is how far the local clock is behind the server's: add it
	// to the local time to get the server's.
	Offset time.Duration
	// Delay is the round trip, less the server's own processing.
	Delay   time.Duration
	Stratum uint8
	// RootDelay and RootDispersion are the server's own round trip to,
	// and error against, its reference clock, as it reports them.
	RootDelay, RootDispersion time.Duration
}

// RootDistance bounds the sample's error (RFC 5905's root distance,
// without the dispersion that grows with time): half the round trips to
// the server and from it to its reference, plus the server's dispersion.
func (s Sample) RootDistance() time.Duration {
	return (s.RootDelay+s.Delay)/2 + s.RootDispersion
}

// ntpTime converts a time to the 64-bit NTP timestamp format.
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return secs<<32 | frac
}

// fromNTP converts an NTP timestamp to a time. Timestamps of era 0 before
// 1968 (the high bit clear) are read as era 1 (2036 onwards), as RFC 4330
// section 3 recommends.
func fromNTP(ts uint64) time.Time {
	secs := int64(ts >> 32)
	if secs&0x80000000 == 0 {
		secs += 1 << 32
	}
	nanos := ((ts & 0xffffffff) * 1e9) >> 32
	return time.Unix(secs-ntpEpochOffset, int64(nanos))
}

// fromShort converts NTP's 32-bit short format (16.16 seconds, unsigned
// as in RFC 5905) to a duration.
func fromShort(v uint32) time.Duration {
	return time.Duration((uint64(v) * uint64(time.Second)) >> 16)
}

// The times an answer may give: none before berth was written (a server
// reset to its epoch says 1970), none from 2100 on, past which the RTC
// and the saved time do not go, and none more than maxAheadYears ahead
// of this clock — or of plausibleFrom, when this clock is behind it (no
// RTC, no saved time). An answer outside is not believed. NTP's 32-bit
// seconds read a server reset to its own epoch, 1900, as 2036 (the next
// era): the last rule refuses that while this clock is more than
// maxAheadYears before 2036, and cannot tell it from the real time after.
// They are functions of constants, 2025-01-01 and 2100-01-01 UTC: a
// time.Date variable is init code run in every berth process.
func plausibleFrom() time.Time { return time.Unix(1735689600, 0).UTC() }
func plausibleTo() time.Time   { return time.Unix(4102444800, 0).UTC() }

// maxAheadYears is how far ahead of this clock an answer may be: a
// device kept in a drawer that long still takes its first answer.
const maxAheadYears = 10

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Errors of an answer that is not believed.
var (
	errImplausible = errors.New("implausible answer")
	errKissOfDeath = errors.New("the server refused the request (stratum 0, kiss-o'-death)")
	errBadAnswer   = errors.New("not an answer to this request")
)

// QuerySNTP asks server ("host" or "host:port", port 123 by default) for
// the time. A name is resolved by the system's resolver
// (/etc/resolv.conf). It gives up after timeout, or when ctx ends.
// Datagrams that are not a believable answer to this request are
// dropped while it waits; the last one's fault is the error when no good
// answer comes.
func QuerySNTP(ctx context.Context, server string, timeout time.Duration) (Sample, error) {
	s := Sample{Server: server}
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(server, "123")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return s, fmt.Errorf("sntp %s: %w", server, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// A cancelled ctx (berth shutting down) ends the wait at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	// The transmit timestamp is random, not our time: the server echoes
	// it as the origin timestamp, which proves the answer is to this
	// request, and our clock (maybe 1970) is not disclosed.
	var req [48]byte
	req[0] = 0<<6 | 4<<3 | 3 // LI 0, version 4, mode 3 (client)
	if _, err := rand.Read(req[40:48]); err != nil {
		return s, fmt.Errorf("sntp %s: %w", server, err)
	}
	t1 := time.Now()
	if _, err := conn.Write(req[:]); err != nil {
		return s, fmt.Errorf("sntp %s: send: %w", server, err)
	}
	var refused error
	for {
		var resp [68]byte
		n, err := conn.Read(resp[:])
		t4 := time.Now()
		if err != nil {
			if refused != nil {
				return s, fmt.Errorf("sntp %s: %w", server, refused)
			}
			return s, fmt.Errorf("sntp %s: no answer: %w", server, err)
		}
		a, err := parseSNTP(resp[:n], req[40:48])
		if err != nil {
			refused = err
			continue
		}
		if limit := maxTime(t1, plausibleFrom()).AddDate(maxAheadYears, 0, 0); a.xmit.After(limit) {
			return s, fmt.Errorf("sntp %s: %w: its time %s is more than %d years ahead of this clock's (or of %d)", server, errImplausible,
				a.xmit.UTC().Format(time.RFC3339), maxAheadYears, plausibleFrom().Year())
		}
		// The round trip t4-t1 is read on the monotonic clock, so a step
		// of the wall clock meanwhile does not distort the delay.
		s.Stratum, s.RootDelay, s.RootDispersion = a.stratum, a.rootDelay, a.rootDisp
		// Each half on its own: a clock a century or more from the
		// server's would overflow the sum (Sub saturates each term).
		s.Offset = a.recv.Sub(t1)/2 + a.xmit.Sub(t4)/2
		// A server that says it held the request longer than the round
		// trip lies about its times (a delay of 0 would make it the
		// least uncertain of all): not believed, beyond a slack for the
		// two clocks' resolutions.
		if s.Delay = t4.Sub(t1) - a.xmit.Sub(a.recv); s.Delay < -maxNegativeDelay {
			return s, fmt.Errorf("sntp %s: %w: it says it held the request %v, longer than the round trip of %v", server, errImplausible, a.xmit.Sub(a.recv), t4.Sub(t1))
		}
		s.Delay = max(s.Delay, 0)
		if dist := s.RootDistance(); dist > MaxRootDistance {
			return s, fmt.Errorf("sntp %s: root distance %v is beyond %v: the server's time is too uncertain", server, dist, MaxRootDistance)
		}
		return s, nil
	}
}

// answer is what a server's reply holds.
type answer struct {
	recv, xmit          time.Time
	stratum             uint8
	rootDelay, rootDisp time.Duration
}

// parseSNTP checks a server's reply to the request whose transmit
// timestamp was origin.
func parseSNTP(b []byte, origin []byte) (answer, error) {
	var a answer
	if len(b) < 48 {
		return a, fmt.Errorf("%w: %d bytes", errBadAnswer, len(b))
	}
	li, vn, mode := b[0]>>6, (b[0]>>3)&7, b[0]&7
	a.stratum = b[1]
	switch {
	case mode != 4:
		return a, fmt.Errorf("%w: mode %d, not a server's", errBadAnswer, mode)
	case vn < 3 || vn > 4:
		return a, fmt.Errorf("%w: version %d", errBadAnswer, vn)
	case string(b[24:32]) != string(origin):
		return a, fmt.Errorf("%w: origin timestamp does not match", errBadAnswer)
	case a.stratum == 0:
		return a, fmt.Errorf("%w: code %q", errKissOfDeath, b[12:16])
	case li == 3 || a.stratum > 15:
		return a, errors.New("the server is not synchronized")
	}
	rts, tts := binary.BigEndian.Uint64(b[32:40]), binary.BigEndian.Uint64(b[40:48])
	if rts == 0 || tts == 0 {
		return a, fmt.Errorf("%w: zero timestamp", errBadAnswer)
	}
	a.recv, a.xmit = fromNTP(rts), fromNTP(tts)
	if a.xmit.Before(a.recv) {
		return a, fmt.Errorf("%w: transmitted before it was received", errBadAnswer)
	}
	if a.xmit.Before(plausibleFrom()) || !a.xmit.Before(plausibleTo()) {
		return a, fmt.Errorf("%w: its time %s is outside %d-%d", errImplausible, a.xmit.UTC().Format(time.RFC3339), plausibleFrom().Year(), plausibleTo().Year()-1)
	}
	a.rootDelay = fromShort(binary.BigEndian.Uint32(b[4:8]))
	a.rootDisp = fromShort(binary.BigEndian.Uint32(b[8:12]))
	return a, nil
}

// maxNegativeDelay is how much a server's processing time may exceed
// the round trip, for the resolution of the clocks that read them.
const maxNegativeDelay = time.Millisecond

// agreeSlack is how far apart two servers' offsets may be beyond their
// root distances and still agree: paths that are not symmetric (a slow
// uplink one way) put up to half a round trip on an offset that the
// root distance does not count.
const agreeSlack = 128 * time.Millisecond

// BestSample asks every server and returns one answer, or every server's
// error. Of three answers or more, the one whose offset is the median:
// a server that lies, however certain it claims to be, is outvoted. Of
// two, the one with the smallest root distance — the least uncertain —
// only if the two agree (their offsets within their root distances and
// agreeSlack): otherwise a server that claims no uncertainty at all
// would win every time, and neither is believed. Of one, that one.
func BestSample(ctx context.Context, servers []string, timeout time.Duration) (Sample, error) {
	var got []Sample
	var errs []error
	for _, srv := range servers {
		s, err := QuerySNTP(ctx, srv, timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, s)
	}
	switch {
	case len(got) >= 3:
		slices.SortStableFunc(got, func(a, b Sample) int { return cmp.Compare(a.Offset, b.Offset) })
		return got[(len(got)-1)/2], nil
	case len(got) == 2:
		if err := agree(got[0], got[1]); err != nil {
			return Sample{}, err
		}
		return slices.MinFunc(got, func(a, b Sample) int { return cmp.Compare(a.RootDistance(), b.RootDistance()) }), nil
	case len(got) == 1:
		return got[0], nil
	case len(errs) == 0:
		return Sample{}, errors.New("sntp: no server to ask")
	}
	return Sample{}, errors.Join(errs...)
}

// agree is nil when two servers' offsets are within their root
// distances and agreeSlack of each other.
func agree(a, b Sample) error {
	apart := (a.Offset - b.Offset).Abs()
	if apart <= a.RootDistance()+b.RootDistance()+agreeSlack {
		return nil
	}
	return fmt.Errorf("sntp: the two servers that answered disagree by %v (%s: offset %v, %s: offset %v): neither is believed; a third server would outvote the wrong one",
		apart.Round(time.Millisecond), a.Server, a.Offset.Round(time.Millisecond), b.Server, b.Offset.Round(time.Millisecond))
}
