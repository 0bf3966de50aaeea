package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"wisp/bench/load"
)

func main() {
	ctx := context.Background()
	gw, _ := load.NewGateway(os.Args[1], 16)
	n, _ := strconv.Atoi(os.Args[2])
	conc, _ := strconv.Atoi(os.Args[3])
	rooms, err := load.CreateRooms(ctx, []*load.Gateway{gw}, n, conc)
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	got := map[*load.Member][]string{}
	socks, err := load.Connect(ctx, rooms, conc, func(m *load.Member, f []byte) {
		mu.Lock()
		got[m] = append(got[m], string(f))
		mu.Unlock()
	})
	if err != nil {
		panic(err)
	}
	resp := fasthttp.AcquireResponse()
	for i, r := range rooms {
		body := fmt.Sprintf(`{"sender":"s","text":"room%d"}`, i)
		if _, err := gw.Send(r.ID, r.Members[0].Cookie, []byte(body), resp); err != nil {
			panic(err)
		}
	}
	time.Sleep(time.Second)
	bad := 0
	for i, r := range rooms {
		for _, m := range r.Members {
			fr := got[m]
			ok := len(fr) == 1 && contains(fr[0], fmt.Sprintf(`"room%d"`, i))
			if !ok {
				bad++
				if bad < 5 {
					fmt.Printf("room %d member %d got %d frames: %v\n", i, m.Index, len(fr), fr)
				}
			}
		}
	}
	fmt.Println("bad sockets:", bad, "of", 2*n)
	socks.Close()
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
