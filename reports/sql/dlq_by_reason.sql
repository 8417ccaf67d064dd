-- Dead-lettered records by reason code.
SELECT reason, COUNT(*) AS records
FROM dead_letters
GROUP BY reason
ORDER BY records DESC, reason
