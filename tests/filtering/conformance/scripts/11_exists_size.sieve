# RFC 5228 5.5, 5.9: exists (all names must exist) and size with K suffix.
require "imap4flags";
if exists ["list-id", "precedence"] { addflag "list"; }
if exists ["from", "x-nothing"] { addflag "never"; }
if size :over 500 { addflag "over500"; }
if size :under 1K { addflag "under1k"; }
if size :over 1M { addflag "huge"; }
