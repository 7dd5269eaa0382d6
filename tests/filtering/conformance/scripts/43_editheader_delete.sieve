# RFC 5293 5: deleteheader by name, :index, :last, with value patterns.
require "editheader";
deleteheader "x-priority";
deleteheader :index 1 "received";
deleteheader :matches "x-spam-score" "9*";
deleteheader :index 1 :last "list-unsubscribe";
deleteheader :contains "subject" "Meeting";
