package auth

import (
	"context"
	"slices"
	"testing"
	"time"
)

func jwksKIDs(s *Server) []string {
	var kids []string
	for _, k := range s.JWKS().Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestRotateThenPruneRetiredKey(t *testing.T) {
	e := newEnv(t, AlgES256)
	ctx := context.Background()
	old := e.token("")
	oldKID := e.store.SigningKeys()[0].KID

	e.clock.Advance(time.Minute)
	k, err := e.srv.RotateSigningKey(ctx, AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	st := e.srv.SigningKeyStatus()
	if len(st) != 2 || !st[0].Active || st[0].KID != k.KID || st[1].Active || !st[1].RetiredAt.Equal(k.CreatedAt) {
		t.Fatalf("status after rotation: %+v", st)
	}
	if h, _ := jwtParts(t, e.token("")); h["kid"] != k.KID {
		t.Fatalf("new tokens signed by %v, want %s", h["kid"], k.KID)
	}
	// The retired key still verifies its tokens and is published...
	if r := e.get("/v1/endpoints", "Bearer "+old); r.status != 200 {
		t.Fatalf("token of the retired key: %d", r.status)
	}
	if gone, err := e.srv.PruneSigningKeys(ctx); err != nil || len(gone) != 0 {
		t.Fatalf("pruned before its tokens expired: %v %v", gone, err)
	}
	if kids := jwksKIDs(e.srv); !slices.Contains(kids, oldKID) {
		t.Fatalf("JWKS %v lost the retired key early", kids)
	}
	// ... until every token it signed has expired.
	e.clock.Advance(time.Hour + ClockSkew)
	gone, err := e.srv.PruneSigningKeys(ctx)
	if err != nil || !slices.Equal(gone, []string{oldKID}) {
		t.Fatalf("prune: %v %v", gone, err)
	}
	if kids := jwksKIDs(e.srv); slices.Contains(kids, oldKID) || !slices.Contains(kids, k.KID) {
		t.Fatalf("JWKS after prune %v", kids)
	}
}

func TestRunKeyRotationRotatesAnOldKey(t *testing.T) {
	e := newEnv(t, AlgES256)
	first := e.store.SigningKeys()[0].KID
	e.clock.Advance(31 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.RunKeyRotation(ctx, DefaultKeyRotation, 10*time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.srv.SigningKeyStatus()
		// Rotated, and the old key (retired just now) not yet pruned.
		if len(st) == 2 && st[0].KID != first && st[1].KID == first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotation within 5 s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(e.store.SigningKeys()); n != 2 {
		t.Fatalf("%d keys: rotated more than once", n)
	}
}
