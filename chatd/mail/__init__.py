"""E-mail: notification mail out (outbound), replies in."""
