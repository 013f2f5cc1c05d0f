module github.com/aiotorrent/aiotorrent

go 1.26
