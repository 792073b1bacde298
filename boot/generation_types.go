package boot

import (
	"fmt"
	"time"

	"berth/image"
	"berth/image/registry"
)

// genRecord is the record, STATE/generations/current.
type genRecord struct {
	// Committed is the generation the device runs when nothing is being
	// tried; Previous the one committed before it (0: none), which
	// `berth rollback` goes back to.
	Committed int `json:"committed"`
	Previous  int `json:"previous,omitempty"`
	// Trying is the generation being switched to (0: none), Boots how
	// many boots have started on it.
	Trying int `json:"trying,omitempty"`
	Boots  int `json:"boots,omitempty"`
	// Base is the digest of the boot config file's bytes when berth last
	// took it: a file replaced while berth was down is applied as an
	// update after the boot.
	Base string `json:"base,omitempty"`
	// LastRollback is the last time a generation was given up.
	LastRollback *Rollback `json:"last_rollback,omitempty"`
	// Hold says a rollback (or a record rebuilt from the marks) left the
	// committed generation to be booted as recorded — its config and its
	// images' digests — and not from the boot config file read again,
	// whose bytes or images may be what was given up. The next commit
	// clears it, and a boot config file changed while berth was down is
	// taken as ever.
	Hold bool `json:"hold,omitempty"`
}

// Rollback says which generation was given up, for which, when and why.
type Rollback struct {
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// maxGeneration bounds a generation's number: one update a second for
// 68 years, and far from int's end, so the next number never wraps. A
// record at the bound is read; an update past it is refused before
// anything is written.
const maxGeneration = 1<<31 - 1

// check refuses a record no berth would have written.
func (r genRecord) check() error {
	switch {
	case r.Committed < 1 || r.Committed > maxGeneration:
		return fmt.Errorf("committed generation %d: want 1 to %d", r.Committed, maxGeneration)
	case r.Trying > maxGeneration:
		return fmt.Errorf("trying generation %d: want at most %d", r.Trying, maxGeneration)
	case r.LastRollback != nil && (r.LastRollback.From < 0 || r.LastRollback.From > maxGeneration ||
		r.LastRollback.To < 0 || r.LastRollback.To > maxGeneration):
		return fmt.Errorf("last rollback from %d to %d: want generations 0 to %d", r.LastRollback.From, r.LastRollback.To, maxGeneration)
	case r.Previous < 0 || r.Previous > maxGeneration || (r.Previous != 0 && r.Previous == r.Committed):
		// Newer than the committed one while berth rollback checks
		// the generation it went back to (rollbackByHand).
		return fmt.Errorf("previous generation %d: want 0 (none) or another than the committed %d, at most %d", r.Previous, r.Committed, maxGeneration)
	case r.Trying != 0 && r.Trying <= r.Committed:
		return fmt.Errorf("trying generation %d: want 0 (none) or more than the committed %d", r.Trying, r.Committed)
	case r.Boots < 0 || r.Boots > maxBootAttemptsLimit:
		return fmt.Errorf("boots %d: want 0 to %d", r.Boots, maxBootAttemptsLimit)
	case r.Base != "" && image.CheckDigest(r.Base) != nil:
		return fmt.Errorf("base %q: not a sha256 digest", r.Base)
	case r.LastRollback != nil && len(r.LastRollback.Reason) > maxReasonLen:
		return fmt.Errorf("last rollback's reason: longer than %d bytes", maxReasonLen)
	}
	return nil
}

// genImage is a container's image as a generation resolved it.
type genImage struct {
	// Digest is the cache entry's: gc keeps it.
	Digest string       `json:"digest"`
	Config image.Config `json:"config"`
	// Ref is, for an image from a registry, its reference pinned to the
	// digest its tag resolved to for the generation: docker://…@sha256:….
	Ref string `json:"ref,omitempty"`
}

// pin makes cc run img: a registry image by its pinned reference (its
// digest key, if any, was checked against it), any other by its digest.
func (cc *ContainerConfig) pin(img genImage) {
	if img.Ref != "" {
		cc.Image = img.Ref
		return
	}
	cc.Digest = img.Digest
}

// checkRef checks that ref, a generation's pinned reference, is cc's
// image pinned to a digest that cc's own pins allow.
func (cc ContainerConfig) checkRef(ref string) error {
	r, err := registry.ParseRef(ref)
	if err != nil {
		return err
	}
	base, err := registry.ParseRef(cc.Image)
	switch {
	case err != nil:
		return fmt.Errorf("ref %s, but the config's image is %s", ref, cc.Image)
	case r.Digest == "" || r.Host != base.Host || r.Repo != base.Repo || r.Tag != base.Tag:
		return fmt.Errorf("ref %s is not %s pinned to a digest", ref, cc.Image)
	case base.Digest != "" && base.Digest != r.Digest, cc.Digest != "" && cc.Digest != r.Digest:
		return fmt.Errorf("ref %s, but the config pins another digest", ref)
	}
	return nil
}

// genMeta is N/generation.json.
type genMeta struct {
	Number int `json:"number"`
	// Source is the config file the generation was made from; relative
	// image paths in it are resolved against its directory.
	Source string              `json:"source"`
	Images map[string]genImage `json:"images"`
	Made   time.Time           `json:"made"`
	// ConfigDigest is the digest of config.toml's bytes: a file damaged
	// since reads as damaged, not as another config. (Generations of an
	// older berth have none.)
	ConfigDigest string `json:"config_digest,omitempty"`
}

// generation is one generation: its config's bytes and its meta.
type generation struct {
	genMeta
	Config []byte
}
