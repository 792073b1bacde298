package board

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRTC is the RTC the kernel sets the clock from at boot
// (CONFIG_RTC_HCTOSYS_DEVICE), and the one berth keeps.
const DefaultRTC = "/dev/rtc0"

// RTC is a battery-backed real-time clock, kept in UTC. RTCDevice is a
// real one; tests inject their own.
type RTC interface {
	Read() (time.Time, error)
	// Set writes t, to the second.
	Set(t time.Time) error
}

// RTCDevice is an RTC character device such as /dev/rtc0. Set refuses
// with ErrNotMachineInit outside the machine's init. The device opens
// exclusively: while another process holds it, both fail (EBUSY).
type RTCDevice struct{ Path string }

// Read reads the RTC (RTC_RD_TIME).
func (r RTCDevice) Read() (time.Time, error) {
	fd, err := unix.Open(r.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return time.Time{}, fmt.Errorf("read RTC %s: %w", r.Path, err)
	}
	defer unix.Close(fd)
	rt, err := unix.IoctlGetRTCTime(fd)
	if err != nil {
		return time.Time{}, fmt.Errorf("read RTC %s: RTC_RD_TIME: %w", r.Path, err)
	}
	t, err := fromRTC(rt)
	if err != nil {
		return t, fmt.Errorf("read RTC %s: %w", r.Path, err)
	}
	return t, nil
}

// Set writes t to the RTC (RTC_SET_TIME), rounded to the nearest second:
// the RTC keeps whole seconds.
func (r RTCDevice) Set(t time.Time) error {
	if err := mayChangeClock(); err != nil {
		return err
	}
	fd, err := unix.Open(r.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set RTC %s: %w", r.Path, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetRTCTime(fd, toRTC(t)); err != nil {
		return fmt.Errorf("set RTC %s to %s: RTC_SET_TIME: %w", r.Path, t.UTC().Round(time.Second).Format(time.RFC3339), err)
	}
	return nil
}

// toRTC is t, rounded to the second, as the RTC ioctls take it.
func toRTC(t time.Time) *unix.RTCTime {
	u := t.UTC().Round(time.Second)
	return &unix.RTCTime{
		Sec: int32(u.Second()), Min: int32(u.Minute()), Hour: int32(u.Hour()),
		Mday: int32(u.Day()), Mon: int32(u.Month()) - 1, Year: int32(u.Year() - 1900),
		Wday: int32(u.Weekday()), Yday: int32(u.YearDay() - 1),
	}
}

// fromRTC converts what RTC_RD_TIME gave, refusing fields out of range
// (an RTC that lost its power can hold anything).
func fromRTC(r *unix.RTCTime) (time.Time, error) {
	if r.Sec < 0 || r.Sec > 59 || r.Min < 0 || r.Min > 59 || r.Hour < 0 || r.Hour > 23 ||
		r.Mday < 1 || r.Mday > 31 || r.Mon < 0 || r.Mon > 11 || r.Year < 70 || r.Year > 1100 {
		return time.Time{}, fmt.Errorf("invalid time %d-%02d-%02d %02d:%02d:%02d", r.Year+1900, r.Mon+1, r.Mday, r.Hour, r.Min, r.Sec)
	}
	t := time.Date(int(r.Year)+1900, time.Month(r.Mon+1), int(r.Mday), int(r.Hour), int(r.Min), int(r.Sec), 0, time.UTC)
	if t.Day() != int(r.Mday) {
		return time.Time{}, fmt.Errorf("invalid date %d-%02d-%02d", r.Year+1900, r.Mon+1, r.Mday)
	}
	return t, nil
}
