package message

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"wisp/contract"
)

func TestValidateCountsUTF16Units(t *testing.T) {
	cases := []struct {
		name, sender, text string
		ok                 bool
	}{
		{"plain", "anonymous-wolf-AbC12", "hello", true},
		{"empty sender", "", "hi", false},
		{"blank sender", "   ", "hi", false},
		{"empty text", "a", "", false},
		{"blank text", "a", " \n\t", false},
		{"sender at limit", strings.Repeat("a", 100), "x", true},
		{"sender over limit", strings.Repeat("a", 101), "x", false},
		{"text at limit", "a", strings.Repeat("a", 1000), true},
		{"text over limit", "a", strings.Repeat("a", 1001), false},
		// é is 2 bytes but one UTF-16 unit: 1000 of them fit.
		{"multi-byte at limit", "a", strings.Repeat("é", 1000), true},
		// 😀 is one rune but two UTF-16 units: 500 fit, 501 do not.
		{"emoji at limit", "a", strings.Repeat("😀", 500), true},
		{"emoji over limit", "a", strings.Repeat("😀", 501), false},
		{"emoji sender over limit", strings.Repeat("😀", 51), "x", false},
		{"CJK at limit", "a", strings.Repeat("中", 1000), true},
		{"sender with a newline", "a\nb", "x", false},
		{"sender with a NUL", "a\x00", "x", false},
		{"sender with a right-to-left override", "evil\u202Egpj.exe", "x", false},
		{"sender with an isolate", "\u2067name", "x", false},
		{"sender with a zero-width space", "a\u200Bb", "x", false},
		{"sender posing as YOU", "YOU", "x", false},
		{"sender posing as you, spaced", " you ", "x", false},
		{"sender containing you", "young-owl", "x", true},
		{"text keeps its line breaks", "a", "line one\nline two", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.sender, c.text)
			var inv *InvalidError
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.As(err, &inv) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
}

func TestToContractShowsMarkerOnlyToAuthor(t *testing.T) {
	m := Stored{Draft: Draft{ID: "x"}, Seq: 1, Author: "mk-a"}
	if got := toContract(m, "mk-a"); got.Token != "mk-a" {
		t.Fatalf("author does not see own marker: %+v", got)
	}
	if got := toContract(m, "mk-b"); got.Token != "" {
		t.Fatalf("other member sees author marker: %+v", got)
	}
}

func TestValidateClientID(t *testing.T) {
	cases := []struct {
		name, id string
		ok       bool
	}{
		{"none (old clients, curl)", "", true},
		{"one character", "a", true},
		{"every allowed character", "AZaz09_-", true},
		{"16 random bytes in base64url", "q3Zx-8_bT1aVn0cK2mYp9w", true},
		{"at limit", strings.Repeat("x", MaxClientID), true},
		{"over limit", strings.Repeat("x", MaxClientID+1), false},
		{"colon (joins marker and clientId in the store)", "a:b", false},
		{"space", "a b", false},
		{"base64 padding", "abc=", false},
		{"slash", "a/b", false},
		{"non-ASCII letter", "é", false},
		{"emoji", "😀", false},
		{"NUL", "a\x00", false},
		{"non-ASCII over limit", strings.Repeat("é", 40), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateClientID(c.id)
			var inv *InvalidError
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && (!errors.As(err, &inv) || !strings.Contains(inv.Reason, "clientId")) {
				t.Fatalf("accepted, or refused without naming clientId: %v", err)
			}
		})
	}
}

// storeFunc is a Store whose Append is a function; List is unused here.
type storeFunc func(Draft) (Stored, error)

func (f storeFunc) Append(_ context.Context, d Draft, _ string, _ int) (Stored, error) { return f(d) }
func (storeFunc) List(context.Context, string, string, int64, int) ([]Stored, string, error) {
	return nil, "", nil
}

// listStore holds n stored messages of the given text.
type listStore struct {
	storeFunc
	text  string
	n     int
	after []int64
}

func (l *listStore) List(_ context.Context, roomID, _ string, after int64, max int) ([]Stored, string, error) {
	l.after = append(l.after, after)
	var out []Stored
	for seq := after + 1; seq <= int64(l.n) && len(out) < max; seq++ {
		out = append(out, Stored{Draft: Draft{ID: "m", RoomID: roomID, Sender: "s", Text: l.text}, Seq: seq})
	}
	return out, "mk", nil
}

// TestPagesAreBoundedByEncodedBytes: 200 messages of escape-heavy text
// would be over 1 MiB of JSON; a page stops at PageBytes and says there is
// more, and following the pages returns every message once.
func TestPagesAreBoundedByEncodedBytes(t *testing.T) {
	heavy := strings.Repeat("<&\u2028", 333) // 6 bytes each in JSON
	store := &listStore{text: heavy, n: 250}
	svc := NewService(store, &countingPublisher{}, 1000)
	var all []contract.Message
	after := int64(0)
	for pages := 0; ; pages++ {
		p, err := svc.Page(context.Background(), "V1StGXR8_Z5jdHi6B-myT", "tok", after)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		if len(b) > PageBytes+1024 {
			t.Fatalf("page of %d bytes", len(b))
		}
		all = append(all, p.Messages...)
		if !p.More {
			break
		}
		if pages > 100 || len(p.Messages) == 0 {
			t.Fatal("pages never end")
		}
		after = p.Messages[len(p.Messages)-1].Seq
	}
	if len(all) != 250 || all[249].Seq != 250 {
		t.Fatalf("%d messages over the pages", len(all))
	}
}

// TestHugeAfterFindsNothing: an after beyond any room's size (one Lua
// cannot even hold exactly) asks the store for nothing past the limit.
func TestHugeAfterFindsNothing(t *testing.T) {
	store := &listStore{text: "x", n: 3}
	svc := NewService(store, &countingPublisher{}, 1000)
	p, err := svc.Page(context.Background(), "V1StGXR8_Z5jdHi6B-myT", "tok", 100000000000000000)
	if err != nil || len(p.Messages) != 0 || p.More {
		t.Fatalf("page %+v, %v", p, err)
	}
	if store.after[0] != 1000 {
		t.Fatalf("store asked after %d", store.after[0])
	}
}

type countingPublisher struct{ n int }

func (p *countingPublisher) Published(context.Context, contract.Message) error { p.n++; return nil }

func TestSendPassesClientIDAndRefusesABadOneBeforeStoring(t *testing.T) {
	var got []Draft
	store := storeFunc(func(d Draft) (Stored, error) {
		got = append(got, d)
		return Stored{Draft: d, Seq: 1, Author: "mk"}, nil
	})
	pub := &countingPublisher{}
	svc := NewService(store, pub, 10)
	req := contract.SendRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "tok", Sender: "a", Text: "hi", ClientID: "c1"}
	if _, err := svc.Send(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ClientID != "c1" {
		t.Fatalf("store got %+v, want one draft with ClientID c1", got)
	}
	req.ClientID = "not valid!"
	var inv *InvalidError
	if _, err := svc.Send(context.Background(), req); !errors.As(err, &inv) {
		t.Fatalf("bad clientId: %v, want an InvalidError", err)
	}
	if len(got) != 1 || pub.n != 1 {
		t.Fatalf("a refused send reached the store (%d appends) or was announced (%d)", len(got), pub.n)
	}
}

func TestValidateEnvelope(t *testing.T) {
	b64 := func(n int, first byte) string {
		b := make([]byte, n)
		b[0] = first
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		name string
		env  string
		ok   bool
	}{
		{"shortest", b64(MinEnvelope, 1), true},
		{"longest", b64(MaxEnvelope, 1), true},
		{"too short", b64(MinEnvelope-1, 1), false},
		{"too long", b64(MaxEnvelope+1, 1), false},
		{"other version", b64(MinEnvelope, 2), false},
		{"padded", base64.URLEncoding.EncodeToString(make([]byte, 100)), false},
		{"standard alphabet", strings.Repeat("+/", 60), false},
		{"not base64", "AQ" + strings.Repeat("!", 100), false},
		{"stray bits", b64(MinEnvelope+2, 1)[:len(b64(MinEnvelope+2, 1))-1] + "B", false},
	} {
		err := ValidateEnvelope(tc.env)
		var inv *InvalidError
		if tc.ok != (err == nil) || err != nil && !errors.As(err, &inv) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// A send with an envelope carries nothing in the clear.
	for _, req := range []contract.SendRequest{
		{Envelope: b64(100, 1), Sender: "alice"},
		{Envelope: b64(100, 1), Text: "hi"},
	} {
		if err := validateSend(req); err == nil {
			t.Errorf("%+v passed", req)
		}
	}
	if err := validateSend(contract.SendRequest{Envelope: b64(100, 1)}); err != nil {
		t.Errorf("an envelope alone: %v", err)
	}
}
