package boot

import (
	"testing"
	"time"
)

// TestTrimmer checks that free memory is handed back once per quiet
// period: not while starts and exits keep coming, once they have stopped
// for trimQuiet, and not again until another start or exit.
func TestTrimmer(t *testing.T) {
	var tr trimmer
	t0 := time.Unix(1000, 0)
	if at := tr.run(t0); !at.IsZero() || tr.trims != 0 {
		t.Fatalf("nothing happened, yet run wants %v, trims %d", at, tr.trims)
	}
	for i := 0; i < 10; i++ { // a crash loop: an exit and a start every 100 ms
		now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		tr.activity(now)
		if at := tr.run(now); !at.Equal(now.Add(trimQuiet)) {
			t.Fatalf("during the burst: run wants %v, want %v", at, now.Add(trimQuiet))
		}
	}
	last := t0.Add(900 * time.Millisecond)
	if tr.run(last.Add(trimQuiet - time.Millisecond)); tr.trims != 0 {
		t.Fatalf("trimmed before the quiet period ended")
	}
	if at := tr.run(last.Add(trimQuiet)); !at.IsZero() || tr.trims != 1 {
		t.Fatalf("quiet period over: run wants %v, trims %d; want one trim", at, tr.trims)
	}
	if tr.run(last.Add(time.Hour)); tr.trims != 1 {
		t.Fatalf("trimmed again without a start or an exit: %d trims", tr.trims)
	}
}
