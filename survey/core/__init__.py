"""Small pieces every area shares: time, column types, tokens, errors."""
