"""The operator console (docs/console.md): who may enter, what they see, what they did."""
