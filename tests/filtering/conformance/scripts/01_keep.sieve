# RFC 5228 4.3: an explicit keep files into INBOX.
keep;
