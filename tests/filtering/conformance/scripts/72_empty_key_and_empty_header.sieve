# RFC 5228 2.7.1: "" with :contains matches any existing field, :is "" only an empty value.
require "imap4flags";
if header :contains "to" "" { addflag "has-to"; }
if header :is "x-absent" "" { addflag "absent-is-empty"; }
if header :contains "subject" "" { addflag "has-subject"; }
if not exists "cc" { addflag "no-cc"; }
keep;
