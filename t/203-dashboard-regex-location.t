# amonitor_dashboard in a regex location (nginx -t accepts it): the page
# and the files it loads by relative URL are all served. The file's name
# was taken from the URI after as many bytes as the regex has, so under
# "location ~ ^/rx/" the page came (200) but app.js and style.css were
# 404 and the page stayed empty.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

$t->write_file('custom/index.html', "<p>custom</p>\n");
$t->write_file('custom/extra.css', "p {}\n");
$t->write_config(
    http_config => 'amonitor_zone amon 1m;',
    config => <<'EOC',
        location ~ ^/rx/ { amonitor_dashboard on; }
        location ~* ^/(?:Team-a|team-b)/dash/ {
            amonitor_dashboard on;
            amonitor_dashboard_root %%PREFIX%%/custom;
        }
        location /prefix/ { amonitor_dashboard on; }
EOC
)->run;

sub file_of {
    my ($f) = @_;
    open(my $fh, '<', "$FindBin::Bin/../dashboard/$f") or die "$f: $!";
    local $/;
    return <$fh>;
}

for my $base ('/rx/', '/prefix/') {
    my $r = $t->http_get($base);
    is($r->{code}, 200, "$base: the page");
    like($r->{body}, qr{<script type="module" src="app.js">},
        "$base: the dashboard's index.html");

    for my $f (['app.js', qr{^text/javascript}],
        ['view.js', qr{^text/javascript}], ['style.css', qr{^text/css}])
    {
        my $x = $t->http_get("$base$f->[0]");
        is($x->{code}, 200, "$base$f->[0] is served");
        like($x->{headers}{'content-type'} // '', $f->[1],
            "$base$f->[0]: its media type");
        is($x->{body}, file_of($f->[0]), "$base$f->[0]: the file");
    }

    is($t->http_get("$base.hidden")->{code}, 404, "$base.hidden: 404");
    is($t->http_get("${base}nope.js")->{code}, 404, "${base}nope.js: 404");
}

my $r = $t->http_get('/team-b/dash/');
is($r->{body}, "<p>custom</p>\n", 'a regex location with a root: index');
$r = $t->http_get('/Team-A/dash/extra.css');
is($r->{code}, 200, 'and its files');
is($r->{body}, "p {}\n", 'by name');

done_testing();
