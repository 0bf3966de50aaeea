package chaos

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"wisp/stack"
)

// Fault breaks one part of the system and brings it back; it returns once
// the part is back (not once the system recovered).
type Fault struct {
	Name   string
	Inject func(ctx context.Context, s *stack.System, l *Load) error
}

// KillNATS kills nats-server with SIGKILL and starts it again after down.
func KillNATS(down time.Duration) Fault {
	return Fault{Name: "nats kill -9, " + down.String() + " down", Inject: func(_ context.Context, s *stack.System, _ *Load) error {
		return s.RestartNATS(down)
	}}
}

// StallRedis freezes Redis (SIGSTOP) for d.
func StallRedis(d time.Duration) Fault {
	return Fault{Name: "redis stalled " + d.String(), Inject: func(_ context.Context, s *stack.System, _ *Load) error {
		return s.StallRedis(d)
	}}
}

// WipeRedis kills Redis and starts it empty, as a memory-only Redis comes
// back: every room ends, and its members must be told.
func WipeRedis() Fault {
	return Fault{Name: "redis kill -9, back empty", Inject: func(_ context.Context, s *stack.System, l *Load) error {
		at := time.Now()
		err := s.RestartRedis()
		l.Wiped(at)
		return err
	}}
}

// KillService kills the first live replica of service with SIGKILL and
// starts a new one in its place after down.
func KillService(service string, down time.Duration) Fault {
	return Fault{Name: service + " kill -9, " + down.String() + " down", Inject: func(ctx context.Context, s *stack.System, _ *Load) error {
		victim := s.LiveProc(service)
		if victim == nil {
			return fmt.Errorf("no live %s", service)
		}
		if err := victim.Kill(); err != nil {
			return err
		}
		time.Sleep(down)
		if _, err := s.Spawn(service, victim.Index); err != nil {
			return err
		}
		return s.WaitReady(ctx)
	}}
}

// Window is the stretch of a run from one fault's start to the next's.
type Window struct {
	Name       string
	Start, End time.Time
	Down       time.Duration // how long the fault's injection took (the part was away)
	Err        error
}

// Run waits settle, then injects each fault in turn, settle apart, while l
// runs; it returns the windows, the first being the baseline.
func Run(ctx context.Context, s *stack.System, l *Load, settle time.Duration, faults ...Fault) []Window {
	ws := []Window{{Name: "baseline", Start: time.Now()}}
	time.Sleep(settle)
	for _, f := range faults {
		now := time.Now()
		ws[len(ws)-1].End = now
		w := Window{Name: f.Name, Start: now}
		w.Err = f.Inject(ctx, s, l)
		w.Down = time.Since(now)
		ws = append(ws, w)
		time.Sleep(settle)
	}
	ws[len(ws)-1].End = time.Now()
	return ws
}

// Figures are the accounting of one window.
type Figures struct {
	Window
	Acked      int           // sends acknowledged (by their first ack) in the window
	Delivered  int           // of those, seen by the room's other member
	Lost       int           // acked, never seen by the other member
	Unseeable  int           // acked while the other member was offline until the room ended
	Duplicated int           // messages stored twice (one send, two seqs)
	Unacked    int           // sends first made in the window never acknowledged
	Ends       int           // rooms that ended in the window
	ByEvent    int           // members told by chat.destroy
	ByRefusal  int           // members told when reconnecting (the room was gone)
	NotTold    int           // members never told
	Recovery   time.Duration // from the fault's start until sends were acked within a second again (see stall)
	MaxAckWait time.Duration // the longest first-send → ack of a send made in the window
	Examples   []string      // a few lost messages or untold members, for the log
	slow       []send        // sends first made in the window and acked after more than slowAck
}

// slowAck is how long an ack may take before its send counts as stalled.
const slowAck = time.Second

// Account works out the figures of each window from what l's members saw.
func Account(l *Load, ws []Window) []Figures {
	figs := make([]Figures, len(ws))
	for i, w := range ws {
		figs[i].Window = w
	}
	in := func(t time.Time) *Figures {
		for i := range figs {
			if !t.Before(figs[i].Start) && t.Before(figs[i].End) {
				return &figs[i]
			}
		}
		return &figs[len(figs)-1]
	}
	for _, r := range l.snapshot() {
		texts := map[string]map[int64]bool{}
		for _, m := range r.members {
			m.mu.Lock()
			for seq, text := range m.seen {
				if texts[text] == nil {
					texts[text] = map[int64]bool{}
				}
				texts[text][seq] = true
			}
			m.mu.Unlock()
		}
		for _, m := range r.members {
			m.mu.Lock()
			for _, s := range m.acked {
				f := in(s.acked)
				f.Acked++
				switch {
				case m.other.sawText(s.id):
					f.Delivered++
				case m.other.offlineToTheEnd(s.acked):
					// The reader's socket had dropped, and the room ended
					// (its history with it) before the reader was back:
					// nothing could show it this message.
					f.Unseeable++
				default:
					f.Lost++
					e, why := r.ended()
					o := m.other
					o.mu.Lock()
					f.example(fmt.Sprintf("lost: %s seq %d acked %s; the reader last saw seq %d, was told by %q at %s, reconnected %d times; room ended %s (%s)",
						m.name, s.seq, s.acked.Format("15:04:05.000"), o.lastSeq, o.told, o.toldAt.Format("15:04:05.000"), o.reconnects, e.Format("15:04:05.000"), why))
					o.mu.Unlock()
				}
				if len(texts[s.id]) > 1 {
					in(s.first).Duplicated++
				}
				fs := in(s.first)
				wait := s.acked.Sub(s.first)
				fs.MaxAckWait = max(fs.MaxAckWait, wait)
				if wait > slowAck {
					fs.slow = append(fs.slow, *s)
				}
			}
			for _, s := range m.pending {
				in(s.first).Unacked++
			}
			m.mu.Unlock()
		}
		ended, reason := r.ended()
		if ended.IsZero() {
			ended, reason = r.deadline, "expired"
		}
		f := in(ended)
		f.Ends++
		for _, m := range r.members {
			m.mu.Lock()
			switch m.told {
			case "destroy":
				f.ByEvent++
			case "refused":
				f.ByRefusal++
			default:
				f.NotTold++
				f.example(fmt.Sprintf("not told: %s (room %s at %s)", m.name, reason, ended.Format("15:04:05.000")))
			}
			m.mu.Unlock()
		}
	}
	for i := range figs {
		if i > 0 { // the baseline has no fault to recover from
			figs[i].Recovery = stall(figs[i].Start, figs[i].slow)
		}
	}
	return figs
}

// stall is how long after start sends stayed slow: the slow sends are
// taken in the order they were first made, from start, for as long as each
// was made while the stall so far lasted (or within slowAck of its end);
// the stall ends with the last of their acks. A lone slow ack later in the
// window is not the fault's.
func stall(start time.Time, slow []send) time.Duration {
	sort.Slice(slow, func(i, j int) bool { return slow[i].first.Before(slow[j].first) })
	end := start
	for _, s := range slow {
		if s.first.After(end.Add(slowAck)) {
			break
		}
		end = later(end, s.acked)
	}
	return end.Sub(start)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// offlineToTheEnd reports whether the member's socket had dropped before
// at and it learnt of the room's end only on reconnecting (the room was
// gone by then).
func (m *member) offlineToTheEnd(at time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.toldOffline && !m.dropped.IsZero() && m.dropped.Before(at)
}

// sawText reports whether the member saw a message with this text.
func (m *member) sawText(text string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.seen {
		if t == text {
			return true
		}
	}
	return false
}

func (f *Figures) example(s string) {
	if len(f.Examples) < 5 {
		f.Examples = append(f.Examples, s)
	}
}

// Totals adds the figures up.
func Totals(figs []Figures) Figures {
	t := Figures{Window: Window{Name: "total"}}
	for _, f := range figs {
		t.Acked += f.Acked
		t.Delivered += f.Delivered
		t.Lost += f.Lost
		t.Unseeable += f.Unseeable
		t.Duplicated += f.Duplicated
		t.Unacked += f.Unacked
		t.Ends += f.Ends
		t.ByEvent += f.ByEvent
		t.ByRefusal += f.ByRefusal
		t.NotTold += f.NotTold
		t.MaxAckWait = max(t.MaxAckWait, f.MaxAckWait)
		t.Recovery = max(t.Recovery, f.Recovery)
		t.Examples = append(t.Examples, f.Examples...)
	}
	sort.Strings(t.Examples)
	return t
}

// Print writes one aligned line per window and the totals.
func Print(w io.Writer, figs []Figures) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tdown\tacked\tdelivered\tlost\toffline to the end\tduplicated\tunacked\tends\ttold (event/refusal)\tnot told\trecovery\tmax ack wait\t")
	for _, f := range append(figs, Totals(figs)) {
		down := "-"
		if f.Down > 0 {
			down = f.Down.Round(10 * time.Millisecond).String()
		}
		name := f.Name
		if f.Err != nil {
			name += " (failed: " + f.Err.Error() + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%d\t%s\t%s\t\n", name, down, f.Acked, f.Delivered, f.Lost,
			f.Unseeable, f.Duplicated, f.Unacked, f.Ends, f.ByEvent, f.ByRefusal, f.NotTold,
			f.Recovery.Round(10*time.Millisecond), f.MaxAckWait.Round(10*time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ex := Totals(figs).Examples; len(ex) > 0 {
		_, err := fmt.Fprintln(w, "  "+strings.Join(ex, "\n  "))
		return err
	}
	return nil
}
