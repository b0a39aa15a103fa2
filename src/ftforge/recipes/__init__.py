"""Recipe generators. Generation is pure (text out); ``files`` writes and checks drift."""
