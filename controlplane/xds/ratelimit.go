package xds

// QuotaSharesChanged tells the server that Settings.QuotaShares answers
// differently now (a new split of a quota): every node is rebuilt after
// the debounce from a new generator of the same view (inbound renders are
// memoized per generator and re-checked against the new shares), and only
// nodes whose snapshot changed are pushed. Safe to call from any
// goroutine.
func (s *Server) QuotaSharesChanged() {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	s.mu.Lock()
	prev := s.gen
	s.mu.Unlock()
	gen, err := prev.next(prev.View())
	if err != nil {
		s.log.Error("quota shares not applied", "err", err)
		return
	}
	s.mu.Lock()
	s.gen = gen
	if !s.viewDirty {
		s.viewDirty, s.viewAt = true, s.cfg.Now()
	}
	s.mu.Unlock()
	s.signal()
}
