"""What every model stage shares: device, precision and threads, and the reader -> model -> writer runner."""
