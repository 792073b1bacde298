package board

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// A GPT entry is taken for a name only as far as the kernel agrees with
// it: the kernel's partition of the entry's number must cover the
// entry's blocks (see readGPT for how the table itself is read).

// gptMatches returns the partitions of the whole disk d whose GPT entry
// kind=value names, each only when the kernel's partition of that number
// covers the entry's blocks: a disk the kernel partitioned otherwise (an
// MBR or blkdevparts= it read instead, a table changed since it read it)
// gives no match, and a note says why.
func gptMatches(devs []blockDev, d blockDev, kind, value string) (found []BlockDevice, notes []string) {
	sector := logicalBlockSize(d.name)
	parts, err := diskGPT(d, sector)
	if err != nil {
		if !errors.Is(err, errNoGPT) {
			notes = append(notes, fmt.Sprintf("%s: %v", d.node, err))
		}
		return nil, notes
	}
	for _, p := range parts {
		if !(kind == "PARTLABEL" && p.Name == value || kind == "PARTUUID" && strings.EqualFold(p.UUID, value)) {
			continue
		}
		part, ok := partitionDev(devs, d.name, p.Number)
		if !ok {
			continue // the kernel has not made it yet
		}
		if err := samePartition(sysBlock+"/"+part.name, p, sector); err != nil {
			notes = append(notes, fmt.Sprintf("%s: GPT partition %d %q of %s: %v: not taken", part.node, p.Number, p.Name, d.node, err))
			continue
		}
		found = append(found, withFS(part.node))
	}
	return found, notes
}

// sysBlock is where sysfs lists the block devices.
const sysBlock = "/sys/class/block"

// logicalBlockSize is the logical block size of the disk name, 512 when
// sysfs does not say.
func logicalBlockSize(name string) int64 {
	sector, err := strconv.ParseInt(readTrim(sysBlock+"/"+name+"/queue/logical_block_size"), 10, 64)
	if err != nil {
		return 512
	}
	return sector
}

// diskGPT reads the GPT of the whole disk d, of logical blocks of sector
// bytes.
func diskGPT(d blockDev, sector int64) ([]GPTPartition, error) {
	f, err := os.Open(d.node)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("GPT: size of %s: %w", d.node, err)
	}
	return readGPT(f, sector, size)
}

// samePartition checks that the kernel's partition whose sysfs directory
// is dir covers the blocks of the GPT entry p, the disk's logical blocks
// being of sector bytes: its start and size, which sysfs gives in
// 512-byte sectors, are the entry's.
func samePartition(dir string, p GPTPartition, sector int64) error {
	start, err := strconv.ParseUint(readTrim(dir+"/start"), 10, 64)
	if err != nil {
		return fmt.Errorf("read %s/start: %w", dir, err)
	}
	size, err := strconv.ParseUint(readTrim(dir+"/size"), 10, 64)
	if err != nil {
		return fmt.Errorf("read %s/size: %w", dir, err)
	}
	k := uint64(sector / 512)
	wantStart, wantSize := p.First*k, (p.Last-p.First+1)*k
	if start != wantStart || size != wantSize {
		return fmt.Errorf("the kernel's partition is %d sectors from sector %d, the GPT entry's blocks %d-%d are %d sectors from sector %d",
			size, start, p.First, p.Last, wantSize, wantStart)
	}
	return nil
}

// partitionDev is partition number n of disk, ok false until the kernel
// has made it.
func partitionDev(devs []blockDev, disk string, n int) (part blockDev, ok bool) {
	for _, d := range devs {
		if d.parent == disk && d.number == n {
			return d, true
		}
	}
	return blockDev{}, false
}
