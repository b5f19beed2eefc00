package user

// User returns the user with the given id, for callers that hold only the
// id (the second step of a sign-in).
func (s *Service) User(id string) (User, bool) { return s.store.User(id) }

// Users returns every user.
func (s *Service) Users() []User { return s.store.Users() }
