package relay

import (
	"slices"
	"sync"
)

// maxAhead bounds the seqs kept above a gap: a seq still missing once this
// many later ones came is taken as lost for good, and the mark moves past it.
const maxAhead = 64

// relayed tracks which of a room's messages this gateway relayed: every
// seq up to upTo, and those above it that came early (two publishers'
// events may overtake each other). A catch-up starts after upTo, so a
// message still on its way when events stopped is fetched even if a later
// one got through; the later ones are sent again, and clients drop repeats
// by id.
type relayed struct {
	mu    sync.Mutex
	upTo  int64
	ahead []int64 // sorted, each > upTo+1
}

// add records seq as relayed, and reports whether it was not already and
// whether a gap below a relayed seq is left open.
func (s *relayed) add(seq int64) (fresh, gap bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case seq <= s.upTo:
		return false, len(s.ahead) > 0
	case seq == s.upTo+1:
		s.upTo = seq
	default:
		i, found := slices.BinarySearch(s.ahead, seq)
		if found {
			return false, true
		}
		s.ahead = slices.Insert(s.ahead, i, seq)
		if len(s.ahead) > maxAhead {
			s.upTo = s.ahead[0]
			s.ahead = s.ahead[1:]
		}
	}
	s.settle()
	return true, len(s.ahead) > 0
}

// skipTo records every seq up to seq as relayed (the newest message when
// the room's first socket came: it read those itself).
func (s *relayed) skipTo(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upTo = max(s.upTo, seq)
	s.settle()
}

// settle folds the seqs above upTo that now follow it without a gap.
func (s *relayed) settle() {
	i := 0
	for i < len(s.ahead) && s.ahead[i] <= s.upTo+1 {
		s.upTo = max(s.upTo, s.ahead[i])
		i++
	}
	if i > 0 {
		s.ahead = slices.Delete(s.ahead, 0, i)
	}
}

// newest is the highest seq relayed.
func (s *relayed) newest() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.ahead); n > 0 {
		return s.ahead[n-1]
	}
	return s.upTo
}

// has reports whether seq was relayed.
func (s *relayed) has(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, found := slices.BinarySearch(s.ahead, seq)
	return seq <= s.upTo || found
}

// gap reports whether a later message came before an earlier one.
func (s *relayed) gap() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ahead) > 0
}

// through is the seq up to which every message was relayed.
func (s *relayed) through() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upTo
}
