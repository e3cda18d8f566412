sluice-learned 1
model=m
bits=8
word_ngrams=1-2
char_ngrams=3-5
query_tail=100
answer_head=100
features=query_words,meta
bias=0.5
nonzero=2
weights
3 0.25
17 -1.5
end
