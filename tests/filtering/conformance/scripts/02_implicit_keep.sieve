# RFC 5228 2.10.2: a script that takes no action keeps the message (implicit keep).
/* nothing
   to do */
if false { discard; }
