# RFC 5228 2.4.1, 5.9: numbers with K, M, G suffixes.
require "imap4flags";
if size :under 1K { addflag "small"; }
if size :over 0K { addflag "nonempty"; }
if size :under 1G { addflag "under-a-gig"; }
if size :over 600 { addflag "over600"; }
keep;
