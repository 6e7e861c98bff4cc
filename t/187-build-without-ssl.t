# The module still builds for an nginx without SSL: every glue file
# compiles (with nginx's -Werror flags) against this build's
# ngx_auto_config.h with NGX_SSL, NGX_OPENSSL and NGX_HTTP_SSL taken out,
# and nothing then refers to OpenSSL or nginx's SSL code.  (wss:// is
# refused by nginx -t in such a build; t/185 covers the SSL build.)

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use Test::More;

my $root = "$FindBin::Bin/..";
my $src = '/usr/share/nginx/src';
my $conf = "$root/build/nginx/ngx_auto_config.h";

if (!-f $conf) {
    fail("$conf exists (make module)");
    done_testing();
    exit;
}

my $dir = tempdir('amon-nossl-XXXXXX', TMPDIR => 1, CLEANUP => 1);

open(my $in, '<', $conf) or die "$conf: $!";
my $text = do { local $/; <$in> };
close $in;
my $n = 0;
for my $m (qw(NGX_HTTP_SSL NGX_OPENSSL NGX_SSL NGX_HTTP_V2 NGX_MAIL_SSL
    NGX_STREAM_SSL)) {
    $n += $text =~ s/#ifndef $m\n#define $m\s+1\n#endif\n//;
}
ok($n >= 3, "SSL is taken out of ngx_auto_config.h ($n macros)");
open(my $out, '>', "$dir/ngx_auto_config.h") or die;
print $out $text;
close $out;
system('cp', "$root/build/nginx/ngx_auto_headers.h", $dir) == 0 or die;

my @inc = map { ('-I', $_) } "$src/src/core", "$src/src/event",
    "$src/src/event/modules", "$src/src/os/unix", "$root/src",
    "$root/src/core", "$root/src/core/gen", $dir, "$src/src/http",
    "$src/src/http/modules";

my @undef;
for my $c (sort glob("$root/src/ngx_http_amonitor_*.c")) {
    my ($name) = $c =~ m{/([^/]+)\.c$};
    my $o = "$dir/$name.o";
    my $cmd = join ' ', 'cc -c -fPIC -O -W -Wall -Wpointer-arith',
        '-Wno-unused-parameter -Werror', @inc, "'$c'", '-o', "'$o'", '2>&1';
    my $log = `$cmd`;
    is($? >> 8, 0, "$name.c compiles without SSL") or diag($log);
    push @undef, map { /^\s+U (\S+)/ ? "$name: $1" : () } `nm '$o'`;
}

my @ssl = grep { /: (?:SSL_|X509|ngx_ssl_|TLS_|ERR_)/ } @undef;
is(scalar @ssl, 0, 'no reference to OpenSSL or nginx\'s SSL code')
    or diag(join "\n", @ssl);

done_testing();
