# RFC 5229 4: set with modifiers.
require ["variables", "fileinto"];
set "a" "Mixed Case";
set :lower "low" "${a}";
set :upper "up" "${a}";
set :lower :upperfirst "cap" "hELLO";
set :length "len" "${a}";
set :quotewildcard "q" "a*b?c\\";
fileinto "${low}-${up}-${cap}-${len}";
if string :is "${q}" "a\\*b\\?c\\\\" { fileinto "Quoted"; }
